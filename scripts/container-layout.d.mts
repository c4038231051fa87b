export interface DockerStage {
  name: string | undefined;
  from: string;
  instructions: { op: string; args: string }[];
}
export function parseDockerfile(text: string): { args: Record<string, string>; stages: DockerStage[] };
export interface ContainerLayout {
  /** Base image of the final stage. */
  from: string;
  baseImages: string[];
  /** The final stage's filesystem root. */
  root: string;
  /** Its WORKDIR, inside `root`. */
  workdir: string;
  env: Record<string, string>;
  user: string;
  cmd: string[] | undefined;
  healthcheck: string[] | undefined;
  expose: string[];
}
export function assembleContainerLayout(dir: string, options?: { dockerfile?: string }): Promise<ContainerLayout>;
export function listFiles(dir: string): Promise<string[]>;
