// esbuild plugins shared by scripts/build.mjs (the server and function bundles) and
// serverless-esbuild (`custom.esbuild.plugins` in serverless.yml, which require()s this file).
import { builtinModules } from 'node:module';

const BUILTIN = new Set(builtinModules);
const isBuiltin = (id) => id.startsWith('node:') || BUILTIN.has(id);

/**
 * Loads Node's built-in modules through require(), not as ES modules. Node gives an imported
 * built-in an ES module facade whose named exports are read once, getters included, so
 * `import { Agent } from 'node:http'` runs `http.WebSocket`'s lazy getter, which loads and
 * keeps undici (and with it the web streams) in every process that never opens a WebSocket;
 * `node:fs`, `node:util` and `node:process` pull in their lazy parts the same way. A require()
 * reads only the properties the code uses. ES imports of built-ins become esbuild's CommonJS
 * interop over the banner's require().
 */
export const builtinsViaRequire = {
  name: 'builtins-via-require',
  setup(build) {
    build.onResolve({ filter: /^(node:)?[a-z0-9_/]+$/ }, (args) => {
      if (!isBuiltin(args.path) || (args.kind !== 'import-statement' && args.kind !== 'dynamic-import')) return undefined;
      return { path: args.path, namespace: 'builtin-via-require' };
    });
    build.onLoad({ filter: /.*/, namespace: 'builtin-via-require' }, (args) => ({
      contents: `module.exports = require(${JSON.stringify(args.path)});`,
      loader: 'js',
    }));
  },
};

export default [builtinsViaRequire];
