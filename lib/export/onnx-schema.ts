/**
 * The part of the ONNX model format that evometa writes, as a protobufjs JSON descriptor.
 *
 * Our own description of the messages we use, with the field numbers and types of the published
 * ONNX IR specification (proto2 syntax: repeated scalars unpacked unless marked packed). Only the
 * fields evometa sets or a reader of our files needs are listed; protobuf readers skip the rest.
 * protobufjs does the wire encoding.
 */
import protobuf from 'protobufjs';

/** TensorProto.DataType values used here. */
export const ONNX_DTYPE = { FLOAT: 1, INT64: 7 } as const;

/** AttributeProto.AttributeType values used here. */
export const ONNX_ATTR = { FLOAT: 1, INT: 2, STRING: 3, FLOATS: 6, INTS: 7 } as const;

const opt = (type: string, id: number): protobuf.IField => ({ type, id });
const rep = (type: string, id: number, packed?: boolean): protobuf.IField & { rule: string } =>
  ({ type, id, rule: 'repeated', ...(packed === undefined ? {} : { options: { packed } }) });

/** The descriptor: package `onnx`, messages by their spec names. */
export const ONNX_SCHEMA: protobuf.INamespace = {
  nested: {
    onnx: {
      nested: {
        ModelProto: {
          fields: {
            ir_version: opt('int64', 1),
            producer_name: opt('string', 2),
            producer_version: opt('string', 3),
            domain: opt('string', 4),
            model_version: opt('int64', 5),
            doc_string: opt('string', 6),
            graph: opt('GraphProto', 7),
            opset_import: rep('OperatorSetIdProto', 8),
            metadata_props: rep('StringStringEntryProto', 14),
          },
        },
        OperatorSetIdProto: {
          fields: { domain: opt('string', 1), version: opt('int64', 2) },
        },
        StringStringEntryProto: {
          fields: { key: opt('string', 1), value: opt('string', 2) },
        },
        GraphProto: {
          fields: {
            node: rep('NodeProto', 1),
            name: opt('string', 2),
            initializer: rep('TensorProto', 5),
            doc_string: opt('string', 10),
            input: rep('ValueInfoProto', 11),
            output: rep('ValueInfoProto', 12),
            value_info: rep('ValueInfoProto', 13),
          },
        },
        NodeProto: {
          fields: {
            input: rep('string', 1),
            output: rep('string', 2),
            name: opt('string', 3),
            op_type: opt('string', 4),
            attribute: rep('AttributeProto', 5),
            doc_string: opt('string', 6),
            domain: opt('string', 7),
          },
        },
        AttributeProto: {
          fields: {
            name: opt('string', 1),
            f: opt('float', 2),
            i: opt('int64', 3),
            s: opt('bytes', 4),
            t: opt('TensorProto', 5),
            floats: rep('float', 7),
            ints: rep('int64', 8),
            strings: rep('bytes', 9),
            doc_string: opt('string', 13),
            type: opt('int32', 20),
          },
        },
        TensorProto: {
          fields: {
            dims: rep('int64', 1),
            data_type: opt('int32', 2),
            float_data: rep('float', 4, true),
            int64_data: rep('int64', 7, true),
            name: opt('string', 8),
            raw_data: opt('bytes', 9),
            doc_string: opt('string', 12),
          },
        },
        ValueInfoProto: {
          fields: { name: opt('string', 1), type: opt('TypeProto', 2), doc_string: opt('string', 3) },
        },
        TypeProto: {
          oneofs: { value: { oneof: ['tensor_type'] } },
          fields: { tensor_type: opt('TypeProto.Tensor', 1), denotation: opt('string', 6) },
          nested: {
            Tensor: {
              fields: { elem_type: opt('int32', 1), shape: opt('TensorShapeProto', 2) },
            },
          },
        },
        TensorShapeProto: {
          fields: { dim: rep('TensorShapeProto.Dimension', 1) },
          nested: {
            Dimension: {
              oneofs: { value: { oneof: ['dim_value', 'dim_param'] } },
              fields: { dim_value: opt('int64', 1), dim_param: opt('string', 2), denotation: opt('string', 3) },
            },
          },
        },
      },
    },
  },
};

let root: protobuf.Root | null = null;

/** The ModelProto type (built from the descriptor once, on first use). */
export function onnxModelType(): protobuf.Type {
  root ??= protobuf.Root.fromJSON(ONNX_SCHEMA);
  return root.lookupType('onnx.ModelProto');
}
