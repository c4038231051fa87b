/** Loads Node's built-ins through require(), not as ES modules (see esbuild-plugins.mjs). */
export declare const builtinsViaRequire: import('esbuild').Plugin;
declare const plugins: import('esbuild').Plugin[];
export default plugins;
