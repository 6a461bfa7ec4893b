/** The optimizee families by name: configuration defaults, validation and construction. */
import { checkQuadraticConfig, DEFAULT_QUADRATIC, QuadraticFamily, type QuadraticConfig } from './quadratic.js';
import { checkMlpConfig, DEFAULT_MLP, MlpFamily, type MlpConfig } from './mlp.js';
import { checkProtoNetTaskConfig, DEFAULT_PROTONET_TASK, ProtoNetTaskFamily, type ProtoNetTaskConfig } from './protonet.js';
import type { TaskFamily } from './task.js';

export type FamilyConfig = QuadraticConfig | MlpConfig | ProtoNetTaskConfig;
export type FamilyName = FamilyConfig['family'];
export const FAMILY_NAMES: readonly FamilyName[] = ['quadratic', 'mlp', 'protonet'];

export const FAMILY_DEFAULTS: Readonly<Record<FamilyName, FamilyConfig>> = { quadratic: DEFAULT_QUADRATIC, mlp: DEFAULT_MLP, protonet: DEFAULT_PROTONET_TASK };

export function checkFamilyConfig(c: FamilyConfig): void {
  switch (c.family) {
    case 'quadratic': return checkQuadraticConfig(c);
    case 'mlp': return checkMlpConfig(c);
    case 'protonet': return checkProtoNetTaskConfig(c);
    default: throw new RangeError(`unknown task family ${JSON.stringify((c as { family: unknown }).family)} (expected ${FAMILY_NAMES.join(', ')})`);
  }
}

/** A family from its configuration; `device` names the device for families that run models. */
export function createFamily(c: FamilyConfig, device?: string): TaskFamily {
  checkFamilyConfig(c);
  switch (c.family) {
    case 'quadratic': return new QuadraticFamily(c);
    case 'mlp': return new MlpFamily(c, device);
    case 'protonet': return new ProtoNetTaskFamily(c, device);
  }
}
