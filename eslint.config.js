// Flat config: typescript-eslint's recommended rules plus the module boundaries of
// ARCHITECTURE.md ("dependencies point inward"), enforced on imports.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const restrict = (patterns) => ({ 'no-restricted-imports': ['error', { patterns }] });

export default tseslint.config(
  {
    ignores: [
      'node_modules/',
      'dist/',
      'packages/*/dist/',
      '.serverless/',
      '.esbuild/',
      '.data/',
      '.ceph/',
      'coverage/',
      'bench/results/',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    // Plain JS files (scripts, this config) run on Node.
    files: ['**/*.js', '**/*.mjs'],
    languageOptions: {
      globals: {
        process: 'readonly',
        URL: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        setImmediate: 'readonly',
        performance: 'readonly',
      },
    },
  },
  {
    rules: {
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The core knows no Lambda, no node:http, no AWS SDK, no config.
    files: ['src/core/**/*.ts'],
    rules: restrict([
      { group: ['@aws-sdk/*', 'node:http', 'node:https', 'aws-lambda'], message: 'src/core is transport- and storage-free.' },
      {
        group: ['../adapters/*', '../app/*', '../storage/*', '../config.ts', '../server.ts'],
        message: 'src/core must not depend outward.',
      },
    ]),
  },
  {
    // The app is transport-free: no node:http, no Lambda, no adapter.
    files: ['src/app/**/*.ts'],
    rules: restrict([
      {
        group: ['node:http', 'node:https', 'aws-lambda', '../adapters/*', '../server.ts'],
        message: 'src/app is transport-free.',
      },
    ]),
  },
  {
    // The client depends on the wire contract only.
    files: ['src/client/**/*.ts'],
    rules: restrict([
      {
        // The SDK's credential chain is the one exception (SigV4 signing of calls).
        group: [
          '../core/*',
          '../storage/*',
          '../adapters/*',
          '../config.ts',
          '@aws-sdk/*',
          '!@aws-sdk/credential-provider-node',
          'busboy',
        ],
        message: 'src/client may import src/protocol.ts, src/sha256.ts and the SigV4 libraries only.',
      },
    ]),
  },
  {
    // Only src/config.ts reads the environment (entry points hand process.env to loadConfig).
    files: ['src/**/*.ts'],
    ignores: ['src/config.ts', 'src/server.ts', 'src/client/cli.ts'],
    rules: {
      'no-restricted-properties': [
        'error',
        { object: 'process', property: 'env', message: 'Read configuration through loadConfig(env).' },
      ],
    },
  },
);
