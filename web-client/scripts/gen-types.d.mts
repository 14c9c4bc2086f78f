export interface Target {
  input: string;
  output: string;
  methods: string;
  methodsDoc: string;
  notifications: string | undefined;
}
export const TARGETS: Target[];
export function generate(openrpc: unknown, target: Target): string;
