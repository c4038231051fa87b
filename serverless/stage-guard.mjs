// Local osls plugin: refuses to package or deploy a stage that serverless.yml does not
// configure (a typo such as `--stage qa` would silently get the defaults) or whose name makes
// a bucket name S3 refuses (`--stage Prod`: S3 wants lower case, and says so only at deploy
// time, after the stack has started to create resources). Offline: it reads the resolved
// configuration only.
//
// custom.stageGuard:
//   allowDefaults: true | false   a stage without its own params may use the defaults
//   bucketName: <Fn::Sub template of the bucket name>, checked with a 12-digit account id
//     and the region the command targets.

/** S3 general purpose bucket naming rules (https://docs.aws.amazon.com/AmazonS3/latest/userguide/bucketnamingrules.html). */
export function bucketNameProblem(name) {
  if (name.length < 3 || name.length > 63) return `it is ${name.length} characters long (S3 allows 3 to 63)`;
  if (!/^[a-z0-9.-]+$/.test(name)) return 'S3 allows only lower-case letters, digits, "." and "-"';
  if (!/^[a-z0-9].*[a-z0-9]$/.test(name)) return 'it must begin and end with a letter or a digit';
  if (name.includes('..')) return 'it has two adjacent periods';
  if (/^\d+\.\d+\.\d+\.\d+$/.test(name)) return 'it looks like an IP address';
  if (/^(xn--|sthree-|amzn-s3-demo-)/.test(name)) return 'it starts with a prefix S3 reserves';
  if (/(-s3alias|--ol-s3|\.mrap|--x-s3|--table-s3)$/.test(name)) return 'it ends with a suffix S3 reserves';
  return undefined;
}

export default class StageGuard {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = { initialize: () => this.check() };
  }

  check() {
    const { service } = this.serverless;
    const stage = String(service.provider.stage);
    const region = String(service.provider.region);
    const settings = service.custom?.stageGuard ?? {};
    const fail = (message) => {
      throw new this.serverless.classes.Error(message);
    };
    // A name S3 refuses is wrong whatever the params say: checked first.
    if (typeof settings.bucketName !== 'string') fail('custom.stageGuard.bucketName must be the bucket name template');
    const bucket = settings.bucketName.replaceAll('${AWS::AccountId}', '123456789012').replaceAll('${AWS::Region}', region);
    // Other CloudFormation references cannot be known before deploy.
    const problem = bucket.includes('${') ? undefined : bucketNameProblem(bucket);
    if (problem) {
      fail(
        `Stage "${stage}" gives the bucket name "${bucket.replace('123456789012', '<account-id>')}", which S3 refuses: ${problem}. ` +
          'Use a lower-case stage name of letters, digits and "-".',
      );
    }
    const known = Object.keys(this.serverless.configurationInput?.params ?? {}).filter((s) => s !== 'default');
    if (!known.includes(stage) && String(settings.allowDefaults) !== 'true') {
      fail(
        `Stage "${stage}" is not configured in serverless.yml (known stages: ${known.join(', ')}). ` +
          `Add it under params, or pass --param="allowDefaults=true" if "${stage}" is meant to use the default settings.`,
      );
    }
  }
}
