export const ASSETS_DIR: string;
export function buildAssets(outdir: string): Promise<void>;
export function assetNames(dir: string): string[];
