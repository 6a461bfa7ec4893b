/**
 * The serialized xla.CompileOptionsProto that PJRT_Client_Compile takes,
 * hand-encoded (only the fields we set):
 *   CompileOptionsProto.executable_build_options (3) = ExecutableBuildOptionsProto {
 *     num_replicas (4), num_partitions (5),
 *     device_assignment (9) = DeviceAssignmentProto { replica_count (1), computation_count (2),
 *       computation_devices (3) = [ ComputationDevice { replica_device_ids (1, packed) } ] } }
 * Checked against jaxlib's own parser in test/xla-pjrt.test.ts.
 */

function varint(out: number[], v: number): void {
  if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`compile options: cannot encode ${v} as a varint`);
  while (v > 0x7f) {
    out.push((v % 128) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

function field(out: number[], num: number, wire: 0 | 2): void { varint(out, num * 8 + wire); }

function bytesField(out: number[], num: number, body: number[]): void {
  field(out, num, 2);
  varint(out, body.length);
  out.push(...body);
}

function intField(out: number[], num: number, v: number): void {
  field(out, num, 0);
  varint(out, v);
}

/** CompileOptionsProto bytes for `replicas` replicas x 1 partition; replica r runs on device id deviceIds[r]. */
export function compileOptionsProto(replicas: number, deviceIds: readonly number[]): Uint8Array {
  if (!Number.isInteger(replicas) || replicas < 1) throw new RangeError(`compile options: replicas must be a positive integer, got ${replicas}`);
  if (deviceIds.length < replicas) throw new RangeError(`compile options: ${replicas} replicas need ${replicas} devices, the plugin has ${deviceIds.length}`);
  const ids: number[] = [];
  for (let r = 0; r < replicas; r++) varint(ids, deviceIds[r]!);
  const computation: number[] = [];
  bytesField(computation, 1, ids);
  const assignment: number[] = [];
  intField(assignment, 1, replicas);
  intField(assignment, 2, 1);
  bytesField(assignment, 3, computation);
  const build: number[] = [];
  intField(build, 4, replicas);
  intField(build, 5, 1);
  bytesField(build, 9, assignment);
  const top: number[] = [];
  bytesField(top, 3, build);
  return Uint8Array.from(top);
}
