/** Display names of the memory study's methods (shared by the report and the charts). */
const METHOD_LABEL: Record<string, string> = {
  'backprop': 'backprop (tape)',
  'forward': 'forward mode (Jacobian)',
  'es': 'ES, noise regenerated',
  'es-matrix': 'ES, population matrix',
  'maml-second-order': 'backprop through l steps (2nd order)',
  'maml-first-order': 'first-order MAML',
  'maml-es': 'ES, noise regenerated',
  'head-second-order': 'backprop through l steps (2nd order)',
  'head-first-order': 'first-order',
  'head-es': 'ES, noise regenerated',
  'head-es-matrix': 'ES, population matrix',
};

export function methodLabel(m: string): string { return METHOD_LABEL[m] ?? m; }
