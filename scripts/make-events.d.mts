export interface EventSpec {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  requestId?: string;
  /** The IAM principal's ARN the front verified; default CALLER_ARN, null for none (auth NONE). */
  caller?: string | null;
}
export declare function restEvent(spec: EventSpec): import('aws-lambda').APIGatewayProxyEvent;
export declare function urlEvent(spec: EventSpec): import('aws-lambda').APIGatewayProxyEventV2;
export declare const CALLER_ARN: string;
