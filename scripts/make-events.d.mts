export interface EventSpec {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer;
  requestId?: string;
}
export declare function restEvent(spec: EventSpec): import('aws-lambda').APIGatewayProxyEvent;
export declare function urlEvent(spec: EventSpec): import('aws-lambda').APIGatewayProxyEventV2;
