/** `evometa report`: an HTML page (and SVG charts) of one or more runs' metrics.jsonl. */
import type { Command } from 'commander';
import { parseNum } from '../errors.js';

interface ReportCli { out?: string; smoothing: string; maxPoints: string }

export function registerReport(program: Command): void {
  program
    .command('report')
    .description('write a self-contained HTML report (charts, configuration, test results) of one or more run directories, and each chart as SVG')
    .argument('<run-dirs...>', 'run directories (each with a metrics.jsonl), overlaid in the charts')
    .option('--out <file>', 'the HTML file (default: RUN_DIR/report.html for one run, ./report.html for several); SVGs go to <name>-charts/ beside it')
    .option('--smoothing <w>', 'EMA weight in [0, 1) for the loss and other noisy per-step curves, or auto (a window of about n/30 steps)', 'auto')
    .option('--max-points <n>', 'most points per run per curve (raw values thinned by min/max buckets)', '1500')
    .action(async (dirs: string[], o: ReportCli) => {
      const { writeRunReport, defaultReportPath } = await import('../report/index.js');
      const smoothing = o.smoothing === 'auto' ? 'auto' : parseNum('smoothing', o.smoothing, { min: 0 })!;
      const maxPoints = parseNum('max-points', o.maxPoints, { int: true, min: 10 })!;
      const r = await writeRunReport(dirs, o.out ?? defaultReportPath(dirs), { smoothing, maxPoints });
      for (const w of r.warnings) process.stderr.write(`warning: ${w}\n`);
      process.stderr.write(`${r.charts.length} charts of ${r.runs.length} run(s); SVG files in ${r.svgs.length ? r.svgs[0]!.replace(/[/\\][^/\\]+$/, '') : '(none)'}\n`);
      console.log(r.html);
    });
}
