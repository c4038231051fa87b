/**
 * Secrets read at run time from SSM Parameter Store, so they never sit in a plain-text
 * environment variable or in the CloudFormation template (CloudFormation cannot resolve a
 * SecureString into a Lambda environment variable). Powertools' SSM provider decrypts and
 * caches: an instance asks SSM at most once per max age, however often the value is read.
 *
 * The SDK finds the endpoint and credentials on its own (`AWS_ENDPOINT_URL_SSM`, the
 * provider chain); tests point `clientConfig` at a local stand-in.
 */
import { SSMProvider } from '@aws-lambda-powertools/parameters/ssm';
import type { SSMClientConfig } from '@aws-sdk/client-ssm';
import { ConfigError, type Config } from './config.ts';

/** How long a value read from SSM is served from memory, s. */
export const SECRET_MAX_AGE_SECONDS = 300;

/** Same rule as `UPLOAD_SESSION_SECRET` in src/config.ts. */
const MIN_SECRET_LENGTH = 32;

export interface SecretReader {
  /** The parameter's decrypted value, from memory when read less than the max age ago. */
  read(): Promise<string>;
}

export interface SecretReaderOptions {
  /** Region, endpoint, credentials of the SSM client. Default: the SDK's own resolution. */
  clientConfig?: SSMClientConfig;
  /** Cache lifetime, whole seconds. Default {@link SECRET_MAX_AGE_SECONDS}. */
  maxAgeSeconds?: number;
  /** Variable named in error messages. Default `UPLOAD_SESSION_SECRET_PARAM`. */
  variable?: string;
}

/**
 * A cached reader of one SSM parameter (SecureString decrypted). Failures are
 * `ConfigError`s naming the variable and the parameter, never the value.
 */
export function createSecretReader(name: string, options: SecretReaderOptions = {}): SecretReader {
  const provider = new SSMProvider({ clientConfig: options.clientConfig ?? {} });
  const variable = options.variable ?? 'UPLOAD_SESSION_SECRET_PARAM';
  const maxAge = options.maxAgeSeconds ?? SECRET_MAX_AGE_SECONDS;
  return {
    async read() {
      let value: string | undefined;
      try {
        value = await provider.get(name, { decrypt: true, maxAge, throwOnMissing: true });
      } catch (err) {
        throw explain(err, variable, name);
      }
      if (value === undefined || value.length < MIN_SECRET_LENGTH) {
        throw new ConfigError([
          `${variable}: the value of SSM parameter "${name}" must be at least ${MIN_SECRET_LENGTH} characters (e.g. openssl rand -base64 48)`,
        ]);
      }
      return value;
    },
  };
}

/**
 * The session secret, once per cold start: `UPLOAD_SESSION_SECRET` as given, else the
 * parameter `UPLOAD_SESSION_SECRET_PARAM` names, else undefined (no session routes).
 */
export async function loadSessionSecret(config: Config, options: SecretReaderOptions = {}): Promise<string | undefined> {
  const { secret, secretParam } = config.sessions;
  if (secret !== undefined || secretParam === undefined) return secret;
  return createSecretReader(secretParam, {
    ...options,
    clientConfig: { region: config.s3.region, ...options.clientConfig },
  }).read();
}

// Powertools wraps SDK errors in GetParameterError with the SDK error as `cause`; match on
// names, never on message text.
function explain(err: unknown, variable: string, name: string): ConfigError {
  const cause = err instanceof Error && err.cause instanceof Error ? err.cause : err;
  const causeName = cause instanceof Error ? cause.name : 'Error';
  const notFound = (err instanceof Error && err.name === 'ParameterNotFoundError') || causeName === 'ParameterNotFound';
  const problem = notFound
    ? `${variable}: SSM parameter "${name}" does not exist (create it: aws ssm put-parameter --type SecureString --name ${name} --value "$(openssl rand -base64 48)")`
    : `${variable}: cannot read SSM parameter "${name}": ${causeName}${status(cause)}`;
  return Object.assign(new ConfigError([problem]), { cause: err });
}

function status(err: unknown): string {
  const code = (err as { $metadata?: { httpStatusCode?: number } } | undefined)?.$metadata?.httpStatusCode;
  return code === undefined ? '' : ` (HTTP ${code})`;
}
