export declare const SERVER_BUNDLE: string;
export declare function buildServer(outfile?: string): Promise<string>;
export declare function oneByteSource(outfile: string): Promise<void>;
export declare const FUNCTION_BUNDLE: string;
export declare function buildFunction(outfile?: string): Promise<string>;
export declare const CLI_BUNDLE: string;
export declare function buildCli(outfile?: string): Promise<string>;
export declare const SERVER_BUILD_OPTIONS: import('esbuild').BuildOptions;
export declare const CLIENT_PACKAGE: string;
/** Builds the client package in `dest` (default packages/client); resolves with its directory. */
export declare function buildClientPackage(dest?: string): Promise<string>;
