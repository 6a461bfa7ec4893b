/** `evometa export`: a checkpoint's encoder as an ONNX model or a PyTorch module; one JSON line on stdout. */
import type { Command } from 'commander';
import { UserError, parseChoice, parseNum } from '../errors.js';
import { resolve } from 'node:path';
import { writeFileAtomic } from '../io/atomic.js';
import '../index.js';

interface ExportCli { format: string; out?: string; bn?: string; opset?: string; batch?: string }

function defaultOut(checkpoint: string, ext: string): string {
  return checkpoint.replace(/(\.safetensors)?$/, ext);
}

export function registerExport(program: Command): void {
  program
    .command('export')
    .description('write a checkpoint\'s encoder as an ONNX model (eval mode) or a PyTorch module with a loader')
    .argument('<checkpoint>', 'a .safetensors checkpoint written by evometa')
    .requiredOption('--format <f>', 'onnx | pytorch')
    .option('--out <file>', 'output file (default: the checkpoint path with .onnx or .py)')
    .option('--bn <mode>', 'onnx: fold (BN folded into the convs, default) | keep (BatchNormalization nodes, eval mode)')
    .option('--opset <n>', 'onnx: operator set, 9 to 23 (default 17)')
    .option('--batch <n>', 'onnx: dynamic (default) | a fixed batch size')
    .action(async (checkpoint: string, o: ExportCli) => {
      const { exportOnnx, decodeOnnx, ONNX_OPSETS } = await import('../export/onnx.js');
      const { exportPytorch } = await import('../export/pytorch.js');
      const format = parseChoice('format', o.format, ['onnx', 'pytorch'] as const)!;
      let bytes: Uint8Array;
      let summary: Record<string, unknown>;
      if (format === 'onnx') {
        const bn = parseChoice('bn', o.bn, ['fold', 'keep'] as const) ?? 'fold';
        const opset = parseNum('opset', o.opset, { int: true, min: ONNX_OPSETS.min, max: ONNX_OPSETS.max }) ?? ONNX_OPSETS.default;
        const batch = o.batch === undefined || o.batch === 'dynamic' ? 'dynamic' as const : parseNum('batch', o.batch, { int: true, min: 1 })!;
        bytes = exportOnnx(checkpoint, { bn, opset, batch });
        const m = decodeOnnx(bytes);
        const dims = (v: (typeof m.graph.input)[number]): (number | string)[] => v.type.tensor_type.shape.dim.map((d) => d.dim_param ?? d.dim_value ?? '?');
        summary = {
          format, bn, opset, irVersion: m.ir_version, nodes: m.graph.node.length,
          input: { name: m.graph.input[0]!.name, shape: dims(m.graph.input[0]!) },
          output: { name: m.graph.output[0]!.name, shape: dims(m.graph.output[0]!) },
        };
      } else {
        for (const k of ['bn', 'opset', 'batch'] as const) {
          if (o[k] !== undefined) throw new UserError(`--${k} applies to --format onnx only`);
        }
        bytes = new TextEncoder().encode(exportPytorch(checkpoint));
        summary = { format };
      }
      const out = o.out ?? defaultOut(checkpoint, format === 'onnx' ? '.onnx' : '.py');
      if (resolve(out) === resolve(checkpoint)) throw new UserError(`--out ${out}: would overwrite the checkpoint`);
      try {
        writeFileAtomic(out, [bytes]);
      } catch (e) {
        throw new UserError(`--out ${out}: cannot write (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
      }
      console.log(JSON.stringify({ ...summary, checkpoint, out, bytes: bytes.length }));
    });
}
