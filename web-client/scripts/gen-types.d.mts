/** A module of the client's protocol: its method maps' names. */
export interface ProtocolTarget {
  input: string;
  output: string;
  contract?: false;
  methods: string;
  methodsDoc: string;
  notifications: string | undefined;
}
/** An application's contract, as `switchboard-client generate` writes it. */
export interface ContractTarget {
  input: string;
  output: string;
  contract: true;
}
export type Target = ProtocolTarget | ContractTarget;
export const TARGETS: Target[];
export function generate(openrpc: unknown, target: Target): string;
