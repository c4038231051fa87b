// Local osls plugin: who may call the service, from two comma-separated params, so that a
// stage's callers are data (`--param="callerRoleArns=arn:...:role/billing,arn:...:role/reports"`)
// and never a wildcard.
//
// custom.callerAccess:
//   roleArns: IAM role ARNs of the calling services. Each gets lambda:InvokeFunctionUrl
//     (AuthType AWS_IAM) and lambda:InvokeFunction (via the URL only) on every function with
//     a URL, and execute-api:Invoke on exactly the REST routes of the functions. The REST
//     API's resource policy also denies every other principal, so the list is the whole
//     truth there (a Lambda resource policy cannot deny: within the account an identity
//     policy can still grant the URL). Empty: nothing is granted to anyone.
//   apiKeys: names of API keys, one per calling service that wants a usage plan (quota and
//     throttling). API keys never authorize: IAM does. Empty: no keys, no usage plan.
import { createHash } from 'node:crypto';

const ROLE_ARN = /^arn:aws(-[a-z]+)*:iam::\d{12}:role\/([\w+=,.@-]+\/)*[\w+=,.@-]{1,64}$/;
const KEY_NAME = /^[A-Za-z0-9_-]{1,64}$/;

function list(value) {
  if (value === undefined || value === null) return [];
  const items = Array.isArray(value) ? value : String(value).split(',');
  return [...new Set(items.map((s) => String(s).trim()).filter(Boolean))];
}

// Deterministic per ARN (not per position), so reordering the list replaces nothing.
const idOf = (arn) => createHash('sha256').update(arn).digest('hex').slice(0, 10).toUpperCase();

export default class CallerAccess {
  constructor(serverless) {
    this.serverless = serverless;
    this.hooks = {
      initialize: () => this.configure(),
      'after:package:compileEvents': () => this.grantFunctions(),
    };
  }

  fail(message) {
    throw new this.serverless.classes.Error(message);
  }

  configure() {
    const { service } = this.serverless;
    const settings = service.custom?.callerAccess ?? {};
    this.roleArns = list(settings.roleArns);
    for (const arn of this.roleArns) {
      if (!ROLE_ARN.test(arn)) this.fail(`callerRoleArns: "${arn}" is not an IAM role ARN (arn:aws:iam::<account>:role/<name>)`);
    }
    const keyNames = list(settings.apiKeys);
    for (const name of keyNames) {
      if (!KEY_NAME.test(name)) this.fail(`apiKeys: "${name}" must be 1 to 64 letters, digits, "_" or "-"`);
    }

    const stage = String(service.provider.stage);
    const apiGateway = (service.provider.apiGateway ??= {});
    if (keyNames.length) {
      apiGateway.apiKeys = keyNames.map((name) => ({
        name: `${service.service}-${stage}-${name}`,
        description: `${name} calling ${service.service} (${stage}): usage plan only, IAM authorizes`,
      }));
    } else {
      delete apiGateway.apiKeys;
      delete apiGateway.usagePlan;
    }

    const routes = [];
    for (const fn of Object.values(service.functions ?? {})) {
      for (const event of fn.events ?? []) {
        if (!event.http) continue;
        if (String(event.http.authorizer).toLowerCase() !== 'aws_iam') {
          this.fail(`http event ${event.http.method} /${event.http.path} must use authorizer: aws_iam`);
        }
        event.http.private = keyNames.length > 0;
        // execute-api resource: /<stage>/<METHOD>/<path>, a path parameter matches any segment.
        routes.push(`execute-api:/${stage}/${event.http.method.toUpperCase()}/${event.http.path.replace(/\{[^}]+\}/g, '*')}`);
      }
    }
    if (routes.length) {
      apiGateway.resourcePolicy = this.roleArns.length
        ? [
            {
              Sid: 'CallersInvoke',
              Effect: 'Allow',
              Principal: { AWS: this.roleArns },
              Action: 'execute-api:Invoke',
              Resource: routes,
            },
            {
              Sid: 'NobodyElse',
              Effect: 'Deny',
              Principal: '*',
              Action: 'execute-api:Invoke',
              Resource: routes,
              Condition: { ArnNotEquals: { 'aws:PrincipalArn': this.roleArns } },
            },
          ]
        : [{ Sid: 'NoCallersConfigured', Effect: 'Deny', Principal: '*', Action: 'execute-api:Invoke', Resource: routes }];
    }
  }

  grantFunctions() {
    const { service } = this.serverless;
    const naming = this.serverless.getProvider('aws').naming;
    const resources = service.provider.compiledCloudFormationTemplate.Resources;
    for (const [name, fn] of Object.entries(service.functions ?? {})) {
      if (!fn.url) continue;
      const functionId = naming.getLambdaLogicalId(name);
      for (const arn of this.roleArns) {
        const prefix = `${functionId}Caller${idOf(arn)}`;
        const common = { FunctionName: { 'Fn::GetAtt': [functionId, 'Arn'] }, Principal: arn };
        resources[`${prefix}UrlPermission`] = {
          Type: 'AWS::Lambda::Permission',
          Properties: { ...common, Action: 'lambda:InvokeFunctionUrl', FunctionUrlAuthType: 'AWS_IAM' },
        };
        // Function URLs need both actions; this one is valid only through the URL.
        resources[`${prefix}InvokePermission`] = {
          Type: 'AWS::Lambda::Permission',
          Properties: { ...common, Action: 'lambda:InvokeFunction', InvokedViaFunctionUrl: true },
        };
      }
    }
  }
}
