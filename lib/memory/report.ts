/**
 * The memory study's markdown report. Three kinds of numbers, always labelled:
 *  MEASURED    in the case's own fresh process: peak RSS (VmHWM) and the
 *              tracked heap (malloc in use + V8 heap), each also as its
 *              increment over an idle process with the same modules and device;
 *  ACCOUNTING  the library's exact byte counts, by category (PART);
 *  FORMULA     the paper's section II-E terms.
 * Headline ratios compare whole-method peaks (everything each method holds).
 */
import { PART_ORDER, type Breakdown } from '../ops/accounting.js';
import { caseSizes, paperFormula, type CaseResult } from './cases.js';
import { methodLabel } from './labels.js';
import type { Measurement } from './measure.js';
import { MAML_EPISODE, PAPER_40X, type SweepCase, type SweepResult } from './sweep.js';

type Row = SweepCase & { result: CaseResult };

export function fmtBytes(b: number | undefined | null): string {
  if (b === undefined || b === null || !Number.isFinite(b)) return '—';
  if (b < 0) return `-${fmtBytes(-b)}`;
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = b, u = 0;
  while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
  return `${u === 0 ? v.toFixed(0) : v < 10 ? v.toFixed(2) : v < 100 ? v.toFixed(1) : v.toFixed(0)} ${units[u]}`;
}

export function fmtSeconds(s: number): string {
  if (!Number.isFinite(s)) return '—';
  if (s < 1) return `${(s * 1000).toFixed(s < 0.01 ? 2 : 0)} ms`;
  if (s < 120) return `${s.toFixed(s < 10 ? 2 : 1)} s`;
  if (s < 2 * 3600) return `${(s / 60).toFixed(1)} min`;
  if (s < 2 * 86400) return `${(s / 3600).toFixed(1)} h`;
  return `${(s / 86400).toFixed(1)} days`;
}

export function ratio(a: number | null | undefined, b: number | null | undefined): string {
  if (a === null || b === null || a === undefined || b === undefined || !(a > 0) || !(b > 0)) return '—';
  const r = a / b;
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)}x`;
}

/** MEASURED: the case's peak RSS over its sweep's idle process's (bytes), or null. */
export function rssOverIdle(r: CaseResult | undefined, idle: Measurement | null): number | null {
  const base = r?.measured?.idle?.peakRss ?? idle?.peakRss;
  if (!r?.measured || base === undefined) return null;
  return r.measured.peakRss - base;
}

/** MEASURED: the case's tracked peak (malloc in use + V8 heap) over the idle process's tracked total (bytes), or null. */
export function trackedOverIdle(r: CaseResult | undefined, idle: Measurement | null): number | null {
  const base = r?.measured?.idle?.tracked ?? idle?.trackedAtRest;
  if (!r?.measured || base === undefined) return null;
  return r.measured.peak.tracked - base;
}

function time(r: CaseResult | undefined): string {
  if (!r || r.status !== 'ok') return '—';
  return r.timeNote.startsWith('extrapolated') ? `${fmtSeconds(r.seconds)} (${r.timeNote})` : fmtSeconds(r.seconds);
}

function status(r: CaseResult): string | null {
  if (r.status === 'out of memory budget') return `out of memory budget (predicted ${fmtBytes(r.predictedBytes)})`;
  if (r.status === 'error') return `error: ${r.error ?? 'unknown'}`;
  return null;
}

function row(cells: (string | number)[]): string {
  return `| ${cells.map(String).join(' | ')} |`;
}

function table(L: string[], head: string[], rows: (string | number)[][]): void {
  L.push(row(head));
  L.push(row(head.map(() => '---')));
  for (const r of rows) L.push(row(r));
  L.push('');
}

function label(c: Row): string {
  return methodLabel(c.spec.method) + (c.spec.pop ? ` (P = ${c.spec.pop})` : '');
}

/** Measured and accounted cells of one case: peak RSS (+ over idle), tracked (+ over idle), accounted peak, time. */
function measuredCells(r: CaseResult, idle: Measurement | null): string[] {
  const st = status(r);
  if (st) return [st, '—', '—', '—'];
  const m = r.measured;
  const rss = m ? `${fmtBytes(m.peakRss)} (+${fmtBytes(rssOverIdle(r, idle))})` : '—';
  const tr = m ? `${fmtBytes(m.peak.tracked)} (+${fmtBytes(trackedOverIdle(r, idle))})` : '—';
  return [rss, tr, fmtBytes(r.accounted.peak), time(r)];
}

function formulaCells(r: CaseResult): string[] {
  const f = r.formula ?? paperFormula(r.spec);
  return f ? [`${f.name} = ${f.expr}`, fmtBytes(f.bytes)] : ['—', '—'];
}

/** The accounting categories at the peak, in the shared order, as "name size" pairs (only those present). */
export function categoriesCell(atPeak: Breakdown): string {
  return PART_ORDER.filter((p) => (atPeak[p] ?? 0) > 0).map((p) => `${p} ${fmtBytes(atPeak[p])}`).join(' · ');
}

function preamble(L: string[], s: SweepResult, meta: { device: string; command: string }): void {
  L.push('# Memory study: backprop vs forward mode vs ES');
  L.push('');
  L.push(`Mode: **${s.quick ? 'quick' : 'full'}** · device: ${meta.device} · ${s.startedAt} · ${fmtSeconds(s.seconds)} in all · command: \`${meta.command}\``);
  L.push('');
  const la = (a: number[]): string => a.map((x) => x.toFixed(1)).join(' / ');
  for (const r of s.runs ?? []) {
    L.push(`- Run of ${r.studies.join(', ')} (budget ${fmtBytes(r.budgetBytes)}; ${r.startedAt}, ${fmtSeconds(r.seconds)}): ${r.cpus} CPUs, ${fmtBytes(r.totalMem)}; load average (1 / 5 / 15 min) ${la(r.loadStart)} at the start, `
      + `${la(r.loadEnd)} at the end, 1-minute load up to ${r.loadMax.toFixed(1)}${r.loadMax > r.cpus + 0.5 ? ' (a shared machine: times are inflated, memory is not)' : ''}.`);
  }
  L.push('');
  L.push('Each case is one meta-gradient in a fresh process. Three kinds of numbers, never mixed:');
  L.push('');
  L.push('- **Measured** (that process): *peak RSS* is VmHWM from /proc/self/status (the kernel\'s high-water mark);');
  L.push('  *tracked* is the peak of everything allocated: the malloc heap in use (glibc mallinfo2 over every arena, sampled every');
  L.push('  millisecond by a thread in the addon: typed arrays\' backing stores, the addon\'s outputs and workspaces) plus the V8 heap');
  L.push('  used (sampled at every accounting change). In parentheses: the increment over an idle process that loaded the same');
  L.push('  modules and initialized the same device' + (s.idle ? ` (idle: peak RSS ${fmtBytes(s.idle.peakRss)}, tracked ${fmtBytes(s.idle.trackedAtRest)})` : '') + '.');
  L.push('- **Accounting** (the library\'s exact byte counts of the arrays each method holds), booked by every method under the same');
  L.push('  categories: parameters, optimizer state (Adam, 8 bytes per parameter, charged to every method alike), gradient (and ES\'s');
  L.push('  float64 accumulator), episode, activations (backprop: its whole tape; forward mode: values and tangents of one pass;');
  L.push('  ES: every op output of one member\'s forward; MAML inner step: its forward activations and adjoints), inner-loop tape,');
  L.push('  inner-loop state, Jacobian, ES population (member parameters, noise scratch, fitness, weights), population matrix, scratch.');
  L.push('  *Accounted peak* is the largest sum over the meta-gradient.');
  L.push('- **Formula**: the paper\'s section II-E terms in float32 bytes.');
  L.push('');
  L.push('Times are one meta-gradient on this machine; "extrapolated" times ran a sample (forward mode: K columns per encoder block;');
  L.push('ES: some members) with every buffer allocated at full size, and scale it up. Episodes: synthetic (memory does not depend on');
  L.push(`pixel values); ProtoNet and the head-only learner 10-way 5-shot 5-query 32 x 32, MAML ${MAML_EPISODE.way}-way ${MAML_EPISODE.shot}-shot ${MAML_EPISODE.query}-query ${MAML_EPISODE.imageSize} x ${MAML_EPISODE.imageSize}.`);
  L.push('');
}

function headline40x(L: string[], cases: Row[], idle: Measurement | null): void {
  const find = (f: (c: Row) => boolean): CaseResult | undefined => cases.find(f)?.result;
  const at = (m: string) => (c: Row): boolean => c.study === 'channels' && c.spec.method === m && c.spec.channels === PAPER_40X.channels && c.spec.way === PAPER_40X.way
    && (c.spec.pop === undefined || c.spec.pop === PAPER_40X.pop);
  const fm = find(at('forward')), esm = find(at('es-matrix')), es = find(at('es')), bp = find(at('backprop'));
  if (!fm || !esm || !es || ![fm, esm, es].every((r) => r.status === 'ok')) return;
  L.push(`## The paper's 40x case: C = ${PAPER_40X.channels}, population ${PAPER_40X.pop}, ${PAPER_40X.way}-way, ${PAPER_40X.imageSize} x ${PAPER_40X.imageSize}`);
  L.push('');
  L.push(`D_phi = ${fm.dPhi}, D_psi = ${PAPER_40X.way} x ${fm.dPsi / PAPER_40X.way} = ${fm.dPsi}. Whole-method peaks (everything each method holds), like with like:`);
  L.push('');
  const ok = bp?.status === 'ok' ? bp : undefined;
  table(L, ['', 'forward mode', 'ES, population matrix (paper)', 'ES, noise regenerated (ours)', 'backprop (reference)', 'forward / paper ES', 'forward / our ES'], [
    ['**measured**: peak RSS over idle', fmtBytes(rssOverIdle(fm, idle)), fmtBytes(rssOverIdle(esm, idle)), fmtBytes(rssOverIdle(es, idle)), fmtBytes(rssOverIdle(ok, idle)),
      ratio(rssOverIdle(fm, idle), rssOverIdle(esm, idle)), `**${ratio(rssOverIdle(fm, idle), rssOverIdle(es, idle))}**`],
    ['**measured**: tracked heap over idle', fmtBytes(trackedOverIdle(fm, idle)), fmtBytes(trackedOverIdle(esm, idle)), fmtBytes(trackedOverIdle(es, idle)), fmtBytes(trackedOverIdle(ok, idle)),
      ratio(trackedOverIdle(fm, idle), trackedOverIdle(esm, idle)), `**${ratio(trackedOverIdle(fm, idle), trackedOverIdle(es, idle))}**`],
    ['measured: peak RSS (whole process)', fmtBytes(fm.measured?.peakRss), fmtBytes(esm.measured?.peakRss), fmtBytes(es.measured?.peakRss), fmtBytes(ok?.measured?.peakRss),
      ratio(fm.measured?.peakRss, esm.measured?.peakRss), ratio(fm.measured?.peakRss, es.measured?.peakRss)],
    ['accounting: accounted peak', fmtBytes(fm.accounted.peak), fmtBytes(esm.accounted.peak), fmtBytes(es.accounted.peak), fmtBytes(ok?.accounted.peak),
      ratio(fm.accounted.peak, esm.accounted.peak), ratio(fm.accounted.peak, es.accounted.peak)],
    ['formula: dominant term (Omega_FM, Omega_ES)', fmtBytes(fm.formula?.bytes), fmtBytes(esm.formula?.bytes), '— (no matrix)', '—',
      `**${ratio(fm.formula?.bytes, esm.formula?.bytes)}** (formula; paper: "approximately forty times")`, '—'],
    ['time per meta-gradient', time(fm), time(esm), time(es), time(ok), '', ''],
  ]);
  L.push('Accounting at each method\'s peak, by category:');
  L.push('');
  table(L, ['method', 'accounted peak', 'categories at the peak'],
    [[methodLabel('forward'), fm], [methodLabel('es-matrix'), esm], [methodLabel('es'), es], ...(ok ? [[methodLabel('backprop'), ok] as const] : [])]
      .map(([n, r]) => [n as string, fmtBytes((r as CaseResult).accounted.peak), categoriesCell((r as CaseResult).accounted.atPeak)]));
}

function taskLengthSummary(L: string[], cases: Row[], idle: Measurement | null): void {
  const tl = cases.filter((c) => c.study === 'task-length');
  for (const ch of [...new Set(tl.map((c) => c.spec.channels))]) {
    const ls = [...new Set(tl.filter((c) => c.spec.channels === ch).map((c) => c.spec.innerSteps!))].sort((a, b) => a - b);
    const get = (m: string, l: number): CaseResult | undefined => tl.find((c) => c.spec.channels === ch && c.spec.method === m && c.spec.innerSteps === l)?.result;
    const so1 = get('maml-second-order', ls[0]!);
    L.push(`## MAML adapting every parameter: memory vs task length l (C = ${ch}, D = ${so1?.dPhi ?? '?'})`);
    L.push('');
    L.push('The inner loop runs l SGD steps on every ConvNet-4 parameter (conv weights and biases, BN gammas and betas, the linear head)');
    L.push(`on the support set; the meta-loss is the query loss after them. Backprop through the inner loop keeps every step's record: g = ${fmtBytes(so1?.formula ? so1.formula.bytes / Math.max(1, so1.spec.innerSteps!) : undefined)} per step (accounting, exact).`);
    L.push('');
    const cell = (r: CaseResult | undefined, f: (r: CaseResult) => number | null): string => (!r ? '—' : r.status === 'ok' ? fmtBytes(f(r)) : r.status === 'out of memory budget' ? `not run (predicted ${fmtBytes(r.predictedBytes)})` : 'error');
    const rows = ls.map((l) => {
      const so = get('maml-second-order', l), fo = get('maml-first-order', l), es = get('maml-es', l);
      return [l,
        cell(so, (r) => rssOverIdle(r, idle)), cell(fo, (r) => rssOverIdle(r, idle)), cell(es, (r) => rssOverIdle(r, idle)),
        cell(so, (r) => trackedOverIdle(r, idle)), cell(es, (r) => trackedOverIdle(r, idle)),
        cell(so, (r) => r.dominant.bytes), cell(so, (r) => r.accounted.peak), cell(fo, (r) => r.accounted.peak), cell(es, (r) => r.accounted.peak),
        `${time(so)} / ${time(fo)} / ${time(es)}`];
    });
    table(L, ['l', '**measured** RSS over idle: 2nd order', '1st order', 'ES', 'measured tracked over idle: 2nd order', 'ES',
      'accounting: 2nd-order tape g x l', 'accounted peak: 2nd order', '1st order', 'ES', 'time: 2nd / 1st / ES'], rows);
    const ran = ls.filter((l) => get('maml-second-order', l)?.status === 'ok' && get('maml-es', l)?.status === 'ok');
    if (ran.length > 0) {
      const l = ran[ran.length - 1]!, so = get('maml-second-order', l)!, es = get('maml-es', l)!;
      L.push(`At l = ${l} (the longest task second order ran within the budget): second order / ES = **${ratio(rssOverIdle(so, idle), rssOverIdle(es, idle))}** in measured RSS over idle, `
        + `${ratio(trackedOverIdle(so, idle), trackedOverIdle(es, idle))} in measured tracked heap over idle, ${ratio(so.accounted.peak, es.accounted.peak)} in accounted peak.`);
      L.push('');
    }
  }
}

function headSummary(L: string[], cases: Row[], idle: Measurement | null): void {
  const tl = cases.filter((c) => c.study === 'task-length-head');
  for (const ch of [...new Set(tl.map((c) => c.spec.channels))]) {
    const ls = [...new Set(tl.filter((c) => c.spec.channels === ch).map((c) => c.spec.innerSteps!))].sort((a, b) => a - b);
    const get = (m: string, l: number): CaseResult | undefined => { const r = tl.find((c) => c.spec.channels === ch && c.spec.method === m && c.spec.innerSteps === l)?.result; return r?.status === 'ok' ? r : undefined; };
    L.push(`## The head-only learner: memory vs task length l (C = ${ch}; only the linear head is adapted)`);
    L.push('');
    table(L, ['l', 'accounting: head tape g x l', '**measured** RSS over idle: 2nd order / 1st order / ES / ES matrix', 'accounted peak: 2nd order / 1st order / ES / ES matrix', 'time: 2nd / 1st / ES'],
      ls.map((l) => {
        const so = get('head-second-order', l), fo = get('head-first-order', l), es = get('head-es', l), em = get('head-es-matrix', l);
        return [l, fmtBytes(so?.dominant.bytes), [so, fo, es, em].map((r) => fmtBytes(rssOverIdle(r, idle))).join(' / '),
          [so, fo, es, em].map((r) => fmtBytes(r?.accounted.peak)).join(' / '), `${time(so)} / ${time(fo)} / ${time(es)}`];
      }));
  }
}

function populationSummary(L: string[], cases: Row[], idle: Measurement | null): void {
  const pp = cases.filter((c) => c.study === 'population');
  for (const ch of [...new Set(pp.map((c) => c.spec.channels))]) {
    const ps = [...new Set(pp.filter((c) => c.spec.channels === ch).map((c) => c.spec.pop!))].sort((a, b) => a - b);
    const ok = (c: Row | undefined): CaseResult | undefined => (c && c.result.status === 'ok' ? c.result : undefined);
    const ref = (m: string): CaseResult | undefined => ok(cases.find((c) => c.study === 'channels' && c.spec.method === m && c.spec.channels === ch && c.spec.way === 10 && c.spec.imageSize === 32));
    const fmr = ref('forward'), bpr = ref('backprop');
    L.push(`## Memory vs population P (ProtoNet, C = ${ch}; forward mode and backprop do not depend on P)`);
    L.push('');
    table(L, ['P', 'formula Omega_ES = P x D_phi', '**measured** RSS over idle: ES matrix / our ES', 'accounted peak: ES matrix / our ES', 'forward mode: measured RSS over idle / accounted', 'backprop: measured RSS over idle / accounted'],
      ps.map((p) => {
        const es = ok(pp.find((c) => c.spec.channels === ch && c.spec.pop === p && c.spec.method === 'es'));
        const em = ok(pp.find((c) => c.spec.channels === ch && c.spec.pop === p && c.spec.method === 'es-matrix'));
        return [p, fmtBytes(em?.formula?.bytes ?? es?.formula?.bytes), `${fmtBytes(rssOverIdle(em, idle))} / ${fmtBytes(rssOverIdle(es, idle))}`,
          `${fmtBytes(em?.accounted.peak)} / ${fmtBytes(es?.accounted.peak)}`,
          fmr ? `${fmtBytes(rssOverIdle(fmr, idle))} / ${fmtBytes(fmr.accounted.peak)}` : '—', bpr ? `${fmtBytes(rssOverIdle(bpr, idle))} / ${fmtBytes(bpr.accounted.peak)}` : '—'];
      }));
  }
}

export function markdownReport(s: SweepResult, meta: { device: string; command: string }): string {
  const L: string[] = [];
  const cases = s.cases, idle = s.idle;
  preamble(L, s, meta);
  headline40x(L, cases, idle);
  taskLengthSummary(L, cases, idle);
  headSummary(L, cases, idle);
  populationSummary(L, cases, idle);

  const head = ['method', 'peak RSS (+ over idle), measured', 'tracked heap (+ over idle), measured', 'accounted peak', 'time / meta-gradient', 'paper term', 'formula bytes', 'accounting: categories at the peak'];
  const section = (title: string, study: string, lead: string[], cells: (c: Row) => (string | number)[]): void => {
    const rows = cases.filter((c) => c.study === study);
    if (rows.length === 0) return;
    L.push(`## ${title}`);
    L.push('');
    table(L, [...lead, ...head], rows.map((c) => [...cells(c), label(c), ...measuredCells(c.result, idle), ...formulaCells(c.result), c.result.status === 'ok' ? categoriesCell(c.result.accounted.atPeak) : '—']));
  };
  section('Every case: ProtoNet, C = 16 / 32 / 64', 'channels', ['C', 'way', 'D_phi', 'D_psi'], (c) => [c.spec.channels, c.spec.way, caseSizes(c.spec).dPhi, caseSizes(c.spec).dPsi]);
  section('Every case: MAML adapting every parameter', 'task-length', ['l', 'C'], (c) => [c.spec.innerSteps!, c.spec.channels]);
  section('Every case: the head-only learner', 'task-length-head', ['l', 'C'], (c) => [c.spec.innerSteps!, c.spec.channels]);
  section('Every case: ProtoNet ES over the population', 'population', ['C', 'P'], (c) => [c.spec.channels, c.spec.pop!]);

  L.push('Charts: [memory vs task length (MAML, every parameter)](memory-vs-task-length.svg) · [the head-only learner](memory-vs-task-length-head.svg) · [memory vs population](memory-vs-population.svg). Raw data: [memory.json](memory.json).');
  L.push('');
  return L.join('\n');
}
