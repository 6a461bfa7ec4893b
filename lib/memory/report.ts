/** The memory study's markdown report: measured bytes beside the paper's formulas (II-E), and time per meta-gradient. */
import { caseSizes, paperFormula, type CaseResult } from './cases.js';
import { methodLabel } from './labels.js';
import { PAPER_40X, type SweepResult } from './sweep.js';

export function fmtBytes(b: number | undefined): string {
  if (b === undefined || !Number.isFinite(b)) return '—';
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

function ratio(a: number, b: number): string {
  if (!(a > 0) || !(b > 0)) return '—';
  const r = a / b;
  return `${r >= 100 ? r.toFixed(0) : r.toFixed(1)}x`;
}

function time(r: CaseResult): string {
  if (r.status !== 'ok') return '—';
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

function measuredCells(r: CaseResult): string[] {
  const st = status(r);
  if (st) return [st, '—', '—', '—'];
  const rss = r.rss ? `${fmtBytes(r.rss.maxRss)} (+${fmtBytes(Math.max(0, r.rss.maxRss - r.rss.baseline))})` : '—';
  return [`${fmtBytes(r.dominant.bytes)} (${r.dominant.name})`, fmtBytes(r.accounted.peak), rss, time(r)];
}

function formulaCells(r: CaseResult): string[] {
  const f = r.formula ?? paperFormula(r.spec);
  return f ? [`${f.name} = ${f.expr}`, fmtBytes(f.bytes)] : ['— (measured only)', '—'];
}

export function markdownReport(s: SweepResult, meta: { device: string; command: string }): string {
  const L: string[] = [];
  const cases = s.cases;
  const find = (f: (c: (typeof cases)[number]) => boolean): CaseResult | undefined => cases.find(f)?.result;
  L.push('# Memory study: backprop vs forward mode vs ES');
  L.push('');
  L.push(`Mode: **${s.quick ? 'quick' : 'full'}** · device: ${meta.device} · budget: ${fmtBytes(s.budgetBytes)} · ${s.startedAt} · ${fmtSeconds(s.seconds)} in all · command: \`${meta.command}\``);
  L.push('');
  L.push('Each row is one meta-gradient computed in a fresh process. *Measured term* and *accounted peak* come from the library\'s own accounting');
  L.push('(exact byte counts of the arrays each method holds: tape, Jacobian, population matrix or ES vectors, parameters, gradient, optimizer state,');
  L.push('the episode, and one op\'s inputs + outputs for forward-only passes); *peak RSS* is `process.resourceUsage().maxRSS` of that process');
  L.push('(in parentheses: its growth over the RSS the process had before the case started, which is mostly Node itself).');
  L.push('Formulas are the paper\'s section II-E terms in float32 bytes. Times are for one meta-gradient on this machine; "extrapolated" times');
  L.push('ran a sample (forward mode: K columns per encoder block; ES: some members) with every buffer allocated at full size, and scale it up.');
  L.push('Episodes: synthetic, 32 x 32, 10-way 5-shot 5-query unless stated (memory does not depend on pixel values).');
  L.push('');

  const fm = find((c) => c.study === 'channels' && c.spec.method === 'forward' && c.spec.channels === PAPER_40X.channels && c.spec.way === PAPER_40X.way);
  const esm = find((c) => c.study === 'channels' && c.spec.method === 'es-matrix' && c.spec.channels === PAPER_40X.channels && c.spec.pop === PAPER_40X.pop);
  const es = find((c) => c.study === 'channels' && c.spec.method === 'es' && c.spec.channels === PAPER_40X.channels && c.spec.pop === PAPER_40X.pop);
  const bp = find((c) => c.study === 'channels' && c.spec.method === 'backprop' && c.spec.channels === PAPER_40X.channels && c.spec.way === PAPER_40X.way);
  if (fm && esm && es && [fm, esm, es].every((r) => r.status === 'ok')) {
    L.push(`## The paper's 40x case: C = ${PAPER_40X.channels}, population ${PAPER_40X.pop}, ${PAPER_40X.way}-way, ${PAPER_40X.imageSize} x ${PAPER_40X.imageSize}`);
    L.push('');
    L.push(`D_phi = ${fm.dPhi}, D_psi = ${PAPER_40X.way} x ${fm.dPsi / PAPER_40X.way} = ${fm.dPsi}.`);
    L.push('');
    L.push(row(['', 'paper (formula)', 'measured here']));
    L.push(row(['---', '---', '---']));
    L.push(row(['forward mode: Jacobian D_psi x D_phi', fmtBytes(fm.formula!.bytes), fmtBytes(fm.dominant.bytes)]));
    L.push(row(['ES: population matrix P x D_phi', fmtBytes(esm.formula!.bytes), fmtBytes(esm.dominant.bytes)]));
    L.push(row(['**ratio Jacobian / population matrix**', `**${ratio(fm.formula!.bytes, esm.formula!.bytes)}** (paper: "approximately forty times")`, `**${ratio(fm.dominant.bytes, esm.dominant.bytes)}**`]));
    L.push(row(['our ES working set (noise regenerated, no matrix)', '—', fmtBytes(es.dominant.bytes)]));
    L.push(row(['**ratio Jacobian / our ES working set**', '—', `**${ratio(fm.dominant.bytes, es.dominant.bytes)}**`]));
    L.push(row(['accounted peak: forward mode / paper ES / our ES', '—', `${fmtBytes(fm.accounted.peak)} / ${fmtBytes(esm.accounted.peak)} / ${fmtBytes(es.accounted.peak)} (our ES ${ratio(fm.accounted.peak, es.accounted.peak)} below forward mode)`]));
    L.push(row(['peak RSS: forward mode / paper ES / our ES', '—', `${fmtBytes(fm.rss?.maxRss)} / ${fmtBytes(esm.rss?.maxRss)} / ${fmtBytes(es.rss?.maxRss)}`]));
    if (bp?.status === 'ok') L.push(row(['backprop tape (reverse mode, for reference)', '—', `${fmtBytes(bp.dominant.bytes)}; accounted peak ${fmtBytes(bp.accounted.peak)}, RSS ${fmtBytes(bp.rss?.maxRss)}`]));
    L.push(row(['time per meta-gradient: forward / paper ES / our ES' + (bp?.status === 'ok' ? ' / backprop' : ''), '—',
      `${time(fm)} / ${time(esm)} / ${time(es)}${bp?.status === 'ok' ? ` / ${time(bp)}` : ''}`]));
    L.push('');
  }

  // Summaries: one row per task length / population, methods side by side.
  const ok = (c: (typeof cases)[number] | undefined): CaseResult | undefined => (c && c.result.status === 'ok' ? c.result : undefined);
  const pick = (study: string, method: string, f: (sp: (typeof cases)[number]['spec']) => boolean) => ok(cases.find((c) => c.study === study && c.spec.method === method && f(c.spec)));
  const tl = cases.filter((c) => c.study === 'task-length');
  for (const ch of [...new Set(tl.map((c) => c.spec.channels))]) {
    const ls = [...new Set(tl.filter((c) => c.spec.channels === ch).map((c) => c.spec.innerSteps!))].sort((a, b) => a - b);
    L.push(`## Summary: memory vs task length l (MAML-style learner, C = ${ch})`);
    L.push('');
    L.push(row(['l', 'backprop 2nd order: head tape g x l', 'backprop 2nd order: accounted peak', 'first-order MAML: accounted peak', 'ES (regenerated): accounted peak', 'ES (population matrix): accounted peak', 'time: 2nd order / 1st order / ES']));
    L.push(row(['---', '---', '---', '---', '---', '---', '---']));
    for (const l of ls) {
      const f = (sp: CaseResult['spec']): boolean => sp.channels === ch && sp.innerSteps === l;
      const so = pick('task-length', 'maml-second-order', f), fo = pick('task-length', 'maml-first-order', f);
      const es = pick('task-length', 'maml-es', f), em = pick('task-length', 'maml-es-matrix', f);
      L.push(row([l, fmtBytes(so?.dominant.bytes), fmtBytes(so?.accounted.peak), fmtBytes(fo?.accounted.peak), fmtBytes(es?.accounted.peak), fmtBytes(em?.accounted.peak),
        `${so ? fmtSeconds(so.seconds) : '—'} / ${fo ? fmtSeconds(fo.seconds) : '—'} / ${es ? fmtSeconds(es.seconds) : '—'}`]));
    }
    L.push('');
  }
  const pp = cases.filter((c) => c.study === 'population');
  for (const ch of [...new Set(pp.map((c) => c.spec.channels))]) {
    const ps = [...new Set(pp.filter((c) => c.spec.channels === ch).map((c) => c.spec.pop!))].sort((a, b) => a - b);
    const same = (sp: CaseResult['spec']): boolean => sp.channels === ch && sp.way === 10 && sp.imageSize === 32;
    const fmr = pick('channels', 'forward', same), bpr = pick('channels', 'backprop', same);
    L.push(`## Summary: memory vs population P (ProtoNet, C = ${ch}; forward mode and backprop do not depend on P)`);
    L.push('');
    L.push(row(['P', 'paper Omega_ES = P x D_phi', 'ES with the matrix: accounted peak', 'our ES: working set', 'our ES: accounted peak', 'forward mode: Jacobian / accounted peak', 'backprop: tape / accounted peak']));
    L.push(row(['---', '---', '---', '---', '---', '---', '---']));
    for (const p of ps) {
      const f = (sp: CaseResult['spec']): boolean => sp.channels === ch && sp.pop === p;
      const es = pick('population', 'es', f), em = pick('population', 'es-matrix', f);
      L.push(row([p, fmtBytes(em?.formula?.bytes ?? es?.formula?.bytes), fmtBytes(em?.accounted.peak), fmtBytes(es?.dominant.bytes), fmtBytes(es?.accounted.peak),
        fmr ? `${fmtBytes(fmr.dominant.bytes)} / ${fmtBytes(fmr.accounted.peak)}` : '—', bpr ? `${fmtBytes(bpr.dominant.bytes)} / ${fmtBytes(bpr.accounted.peak)}` : '—']));
    }
    L.push('');
  }

  const section = (title: string, study: string, head: string[], cells: (c: (typeof cases)[number]) => (string | number)[]): void => {
    const rows = cases.filter((c) => c.study === study);
    if (rows.length === 0) return;
    L.push(`## ${title}`);
    L.push('');
    L.push(row(head));
    L.push(row(head.map(() => '---')));
    for (const c of rows) L.push(row(cells(c)));
    L.push('');
  };
  section('Measured bytes vs the paper\'s formulas, ProtoNet, C = 16 / 32 / 64', 'channels',
    ['C', 'way', 'method', 'D_phi', 'D_psi', 'paper term', 'formula bytes', 'measured term', 'accounted peak', 'peak RSS', 'time / meta-gradient'],
    (c) => [c.spec.channels, c.spec.way, methodLabel(c.spec.method) + (c.spec.pop ? ` (P = ${c.spec.pop})` : ''), caseSizes(c.spec).dPhi, caseSizes(c.spec).dPsi, ...formulaCells(c.result), ...measuredCells(c.result)]);
  section('Task length: the MAML-style learner with l inner steps', 'task-length',
    ['l', 'C', 'method', 'paper term', 'formula bytes', 'measured term', 'accounted peak', 'peak RSS', 'time / meta-gradient'],
    (c) => [c.spec.innerSteps!, c.spec.channels, methodLabel(c.spec.method) + (c.spec.pop ? ` (P = ${c.spec.pop})` : ''), ...formulaCells(c.result), ...measuredCells(c.result)]);
  section('Population size: ProtoNet ES', 'population',
    ['C', 'P', 'method', 'paper term', 'formula bytes', 'measured term', 'accounted peak', 'peak RSS', 'time / meta-gradient'],
    (c) => [c.spec.channels, c.spec.pop!, methodLabel(c.spec.method), ...formulaCells(c.result), ...measuredCells(c.result)]);

  L.push('Charts: [memory vs task length](memory-vs-task-length.svg) · [memory vs population](memory-vs-population.svg). Raw data: [memory.json](memory.json).');
  L.push('');
  return L.join('\n');
}
