/**
 * The run report in a real browser: headless Chromium (playwright-core driving the system's
 * /usr/bin/chromium) opens the page from disk, with no network; the test checks that nothing
 * logged an error, that every chart's SVG drew marks with data, and keeps a screenshot in
 * test-artifacts/report.png. Skipped, with the reason, where Chromium is not installed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { writeRunReport } from '../lib/report/index.js';
import { esRun, oldBackpropRun, writeRun } from './helpers/metrics-fixtures.js';

const CHROMIUM = process.env.EVOMETA_CHROMIUM ?? '/usr/bin/chromium';
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium) console.log(`skipping the browser test of the report: no Chromium at ${CHROMIUM} (apt-get install chromium, or set EVOMETA_CHROMIUM)`);
const t = haveChromium ? test : test.skip;

const artifacts = resolve(dirname(fileURLToPath(import.meta.url)), '../../test-artifacts');

interface ChartCheck { id: string; lines: number; lineData: number; areas: number; symbols: number; axisTitles: string[]; legend: string[]; width: number; height: number }

t('Chromium renders the report: no console errors, every chart has drawn marks, a screenshot kept', async () => {
  const { chromium } = await import('playwright-core');
  const root = mkdtempSync(join(tmpdir(), 'evometa-report-browser-'));
  const runs = [
    writeRun(join(root, 'es-seed1'), esRun(21, 150, 30)),
    writeRun(join(root, 'es-seed2'), esRun(22, 120, 30)),
    writeRun(join(root, 'backprop'), oldBackpropRun(23, 60, 20)),
  ];
  const rep = await writeRunReport(runs, join(root, 'report.html'));
  const profile = mkdtempSync(join(tmpdir(), 'evometa-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 1280, height: 900 },
    timeout: 30000,
  });
  try {
    const page = await ctx.newPage();
    const errors: string[] = [];
    const offline: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error' || m.type() === 'warning') errors.push(`console.${m.type()}: ${m.text()}`); });
    page.on('pageerror', (e) => errors.push(`page error: ${e.message}`));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) offline.push(r.url()); });
    await page.goto(pathToFileURL(rep.html).href, { waitUntil: 'load' });
    const checks: ChartCheck[] = await page.$$eval('figure.chart', (figs) => figs.map((f) => {
      const svg = f.querySelector('svg')!;
      const paths = (sel: string) => [...svg.querySelectorAll(`${sel} path`)].filter((p) => (p.getAttribute('d') ?? '').length > 10);
      const lines = paths('g.mark-line');
      const box = svg.getBoundingClientRect();
      return {
        id: f.id,
        lines: lines.length,
        // Path commands: a line with n points has about n of them.
        lineData: Math.max(0, ...lines.map((p) => (p.getAttribute('d')!.match(/[ML]/g) ?? []).length)),
        areas: paths('g.mark-area').length,
        symbols: paths('g.mark-symbol').length,
        axisTitles: [...svg.querySelectorAll('g.role-axis-title text')].map((x) => x.textContent ?? ''),
        legend: [...svg.querySelectorAll('g.role-legend-label text')].map((x) => x.textContent ?? ''),
        width: box.width,
        height: box.height,
      };
    }));
    mkdirSync(artifacts, { recursive: true });
    const shot = join(artifacts, 'report.png');
    await page.screenshot({ path: shot, fullPage: true });
    console.log(`report screenshot: ${shot} (page ${rep.html})`);

    assert.equal(errors, [], 'no console errors or warnings');
    assert.equal(offline, [], 'no network requests');
    const ids = checks.map((c) => c.id);
    assert.equal(ids, rep.charts.map((c) => c.id), 'one figure per chart');
    for (const m of ['loss', 'val-acc', 'train-acc', 'cand-per-s', 'sigma', 'g-norm', 'lr']) {
      assert.ok(ids.includes(`${m}-vs-step`) && ids.includes(`${m}-vs-time`), `${m} against step and wall-clock`);
    }
    for (const c of checks) {
      assert.ok(c.width > 300 && c.height > 200, `${c.id}: laid out at ${c.width}x${c.height}`);
      assert.ok(c.lines >= 1, `${c.id}: a drawn line`);
      assert.ok(c.lineData >= 3, `${c.id}: lines with data (${c.lineData} path commands)`);
      assert.is(c.axisTitles.length, 2, `${c.id}: x and y axis titles`);
      assert.ok(c.axisTitles.every((s) => s.length > 0), `${c.id}: axis titles ${c.axisTitles.join(' | ')}`);
      assert.ok(c.legend.length >= 1, `${c.id}: a legend of the runs`);
    }
    const val = checks.find((c) => c.id === 'val-acc-vs-step')!;
    assert.ok(val.areas >= 3 && val.symbols >= 3, `val-acc: a ci95 band and points for each of the 3 runs (areas ${val.areas}, symbols ${val.symbols})`);
    assert.equal(val.legend, ['es-seed1', 'es-seed2', 'backprop'], 'runs in command-line order');
    const sigma = checks.find((c) => c.id === 'sigma-vs-step')!;
    assert.equal(sigma.legend, ['es-seed1', 'es-seed2'], 'a metric only ES logs lists the ES runs alone');
    const loss = checks.find((c) => c.id === 'loss-vs-step')!;
    assert.is(loss.lines, 6, 'loss: raw and smoothed line per run');
  } finally {
    await ctx.close();
    rmSync(profile, { recursive: true, force: true });
  }
});

test.run();
