#!/usr/bin/env python3
"""Checks meta graphs, SavedModels and checkpoints that pstrain wrote against TensorFlow 1.15's
own definitions, without TensorFlow: the files are decoded with TensorFlow's .proto files
(tests/data/tf_defs/tensorflow/..., compiled here with protoc) and every node is validated
against TensorFlow's op registry (tests/data/tf_defs/ops.pbtxt, parsed with protobuf's text
format into an OpList). Shares no code with pstrain.

  tf_defs_check.py [--defs DIR] [--max-meta-bytes N] [--meta FILE]... [--ckpt PREFIX]...
                   [--saved-model DIR]... [--self-test META]
                   [--compare-saved-model OURS THEIRS]... [--values-match PREFIX_A PREFIX_B]...

What a node must satisfy (what TensorFlow's importer and ValidateNodeDef require):
  - its op is in the registry and not deprecated at the GraphDef's producer version;
  - every attr without a default is present, every attr it carries (other than "_" ones) is
    declared, each value has the attr's type (type, list(type), int, shape, ...) and lies in
    allowed_values / above minimum;
  - its data inputs come before its control inputs, their number is what the op's input args
    add up to (number_attr, type_list_attr), each names an existing node's existing output, and
    the output's dtype (and ref-ness, for ref inputs) is what the input arg wants;
  - Const tensors hold as many bytes or values as their shape needs.
A meta graph's SaverDef must name tensors and an op that exist; its restore op must assign every
saved variable from a RestoreV2 whose tensor names and slice specs the checkpoint (when given)
holds. VariableDefs name existing tensors ("name:0"); "global_step" is a VariableDef list.
A checkpoint's .index is read as TensorFlow's table reader does (footer, block CRCs, sorted
keys), its header must be TF's, every tensor's bytes must match its masked CRC-32C, and every
partitioned variable's slices must be found under the key TensorFlow's reader computes from the
slice (a dimension without a length is whole: length -1). Prints "ok ..." per file, "FAIL ..."
per finding; exits 1 when anything failed.
"""
import os
import struct
import subprocess
import sys
import tempfile

failures = []
quiet = [False]


def fail(where, msg):
    failures.append("%s: %s" % (where, msg))
    if not quiet[0]:
        print("FAIL %s: %s" % (where, msg))


# ---- TensorFlow's protos -------------------------------------------------------------------

def load_protos(defs):
    out = tempfile.mkdtemp(prefix="tfdefs_py")
    protos = []
    for root, _, files in os.walk(os.path.join(defs, "tensorflow")):
        protos += [os.path.relpath(os.path.join(root, f), defs) for f in files if f.endswith(".proto")]
    inc = ["-I" + defs]
    for d in ("/usr/include", "/usr/local/include"):
        if os.path.exists(os.path.join(d, "google/protobuf/any.proto")):
            inc.append("-I" + d)
    subprocess.check_call(["protoc"] + inc + ["--python_out=" + out] + sorted(protos))
    sys.path.insert(0, out)
    global graph_pb2, meta_graph_pb2, op_def_pb2, variable_pb2, tensor_bundle_pb2
    global saved_model_pb2, saver_pb2, types_pb2, text_format
    from google.protobuf import text_format
    from tensorflow.core.framework import graph_pb2, op_def_pb2, variable_pb2, types_pb2
    from tensorflow.core.protobuf import meta_graph_pb2, tensor_bundle_pb2, saved_model_pb2
    from tensorflow.core.protobuf import saver_pb2


def load_ops(defs):
    ops = op_def_pb2.OpList()
    with open(os.path.join(defs, "ops.pbtxt")) as f:
        text_format.Parse(f.read(), ops)
    return {o.name: o for o in ops.op}


def has_unknown_fields(msg):
    """True when msg or a message inside it holds fields TensorFlow's protos do not declare."""
    try:
        if len(msg.UnknownFields()):
            return True
    except (AttributeError, NotImplementedError):
        return False
    for fd, val in msg.ListFields():
        if fd.type != fd.TYPE_MESSAGE:
            continue
        if fd.label == fd.LABEL_REPEATED:
            items = val.values() if hasattr(val, "values") and not isinstance(val, list) and \
                fd.message_type.GetOptions().map_entry else val
            for v in items:
                if has_unknown_fields(v):
                    return True
        elif has_unknown_fields(val):
            return True
    return False


# ---- Graph checks --------------------------------------------------------------------------

DTYPE_SIZE = {1: 4, 2: 8, 3: 4, 4: 1, 5: 2, 6: 1, 9: 8, 10: 1, 14: 2, 17: 2, 19: 2, 22: 4, 23: 8}


def split_input(s):
    if s.startswith("^"):
        return s[1:], -1
    if ":" in s:
        n, i = s.rsplit(":", 1)
        if i.isdigit():
            return n, int(i)
    return s, 0


def attr_value_ok(kind, v):
    case = v.WhichOneof("value")
    if kind.startswith("list("):
        if case != "list":
            # TF accepts an empty AttrValue list only through the "list" case.
            return False, "is %s, want %s" % (case, kind)
        inner = kind[5:-1]
        field = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type",
                 "shape": "shape", "tensor": "tensor", "func": "func"}[inner]
        for other in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
            if other != field and len(getattr(v.list, other)):
                return False, "holds list(%s) values, want %s" % (other, kind)
        return True, ""
    want = {"string": "s", "int": "i", "float": "f", "bool": "b", "type": "type",
            "shape": "shape", "tensor": "tensor", "func": "func"}.get(kind)
    if want is None:
        return True, ""
    if case != want:
        return False, "is %s, want %s" % (case, kind)
    return True, ""


def list_len(v):
    for f in ("s", "i", "f", "b", "type", "shape", "tensor", "func"):
        n = len(getattr(v.list, f))
        if n:
            return n
    return 0


def arg_types(arg, attrs):
    """The dtypes (base) an input or output arg stands for, or None when they cannot be known."""
    if arg.type_list_attr:
        a = attrs.get(arg.type_list_attr)
        return list(a.list.type) if a is not None else None
    if arg.type_attr:
        a = attrs.get(arg.type_attr)
        t = a.type if a is not None else None
    else:
        t = arg.type
    n = 1
    if arg.number_attr:
        a = attrs.get(arg.number_attr)
        if a is None:
            return None
        n = a.i
    return [t] * n


def node_attrs(node, opdef):
    """The node's attrs with the op's defaults filled in (as TF's AddDefaultsToNodeDef does)."""
    attrs = dict(node.attr)
    for a in opdef.attr:
        if a.name not in attrs and a.HasField("default_value"):
            attrs[a.name] = a.default_value
    return attrs


def tensor_ok(t):
    elems = 1
    for d in t.tensor_shape.dim:
        elems *= d.size
    if t.tensor_content:
        size = DTYPE_SIZE.get(t.dtype)
        if size is not None and len(t.tensor_content) != elems * size:
            return "tensor_content has %d bytes, shape needs %d" % (len(t.tensor_content),
                                                                     elems * size)
        return ""
    field = {1: "float_val", 2: "double_val", 3: "int_val", 4: "int_val", 5: "int_val",
             6: "int_val", 9: "int64_val", 10: "bool_val", 7: "string_val"}.get(t.dtype)
    if field and len(getattr(t, field)) > elems:
        return "%d values for %d elements" % (len(getattr(t, field)), elems)
    if field and elems > 0 and len(getattr(t, field)) == 0 and t.dtype != 7:
        return "no values for %d elements" % elems
    return ""


def check_graph(where, gd, ops):
    producer = gd.versions.producer
    nodes = {}
    for n in gd.node:
        if n.name in nodes:
            fail(where, "two nodes named '%s'" % n.name)
        nodes[n.name] = n
    outputs = {}  # name -> list of (dtype, is_ref) or None
    for n in gd.node:
        od = ops.get(n.op)
        if od is None:
            fail(where, "node '%s': op '%s' is not in TensorFlow's registry" % (n.name, n.op))
            continue
        if od.HasField("deprecation") and od.deprecation.version <= producer:
            fail(where, "node '%s': op '%s' is deprecated at GraphDef version %d (producer %d)" %
                 (n.name, n.op, od.deprecation.version, producer))
        attrs = node_attrs(n, od)
        declared = {a.name: a for a in od.attr}
        for a in od.attr:
            if a.name not in n.attr and not a.HasField("default_value"):
                fail(where, "node '%s' (%s): required attr '%s' missing" % (n.name, n.op, a.name))
        for name, v in n.attr.items():
            if name.startswith("_"):
                continue
            a = declared.get(name)
            if a is None:
                fail(where, "node '%s' (%s): attr '%s' is not declared by the op" %
                     (n.name, n.op, name))
                continue
            ok, why = attr_value_ok(a.type, v)
            if not ok:
                fail(where, "node '%s' (%s): attr '%s' %s" % (n.name, n.op, name, why))
                continue
            if a.type == "type" and a.allowed_values.list.type and \
                    v.type not in a.allowed_values.list.type:
                fail(where, "node '%s' (%s): attr '%s' type %d not allowed" %
                     (n.name, n.op, name, v.type))
            if a.type == "int" and a.has_minimum and v.i < a.minimum:
                fail(where, "node '%s' (%s): attr '%s' = %d below minimum %d" %
                     (n.name, n.op, name, v.i, a.minimum))
            if a.type.startswith("list(") and a.has_minimum and list_len(v) < a.minimum:
                fail(where, "node '%s' (%s): attr '%s' has %d items, minimum %d" %
                     (n.name, n.op, name, list_len(v), a.minimum))
            if a.type == "tensor":
                why = tensor_ok(v.tensor)
                if why:
                    fail(where, "node '%s' (%s): attr '%s': %s" % (n.name, n.op, name, why))
        if n.op == "Const" and "dtype" in n.attr and "value" in n.attr and \
                n.attr["value"].tensor.dtype != n.attr["dtype"].type:
            fail(where, "node '%s': Const value dtype %d, attr dtype %d" %
                 (n.name, n.attr["value"].tensor.dtype, n.attr["dtype"].type))
        outs = []
        for arg in od.output_arg:
            ts = arg_types(arg, attrs)
            if ts is None:
                outs = None
                break
            outs += [(t, arg.is_ref) for t in ts]
        outputs[n.name] = outs
    for n in gd.node:
        od = ops.get(n.op)
        if od is None:
            continue
        attrs = node_attrs(n, od)
        seen_control = False
        data = []
        for s in n.input:
            src, idx = split_input(s)
            if src not in nodes:
                fail(where, "node '%s': input '%s' names no node" % (n.name, s))
                continue
            if idx < 0:
                seen_control = True
                continue
            if seen_control:
                fail(where, "node '%s': data input '%s' after a control input" % (n.name, s))
            data.append((src, idx, s))
        want = []
        for arg in od.input_arg:
            ts = arg_types(arg, attrs)
            if ts is None:
                want = None
                break
            want += [(t, arg.is_ref, arg.name) for t in ts]
        if want is None:
            fail(where, "node '%s' (%s): input counts cannot be derived from its attrs" %
                 (n.name, n.op))
            continue
        if len(want) != len(data):
            fail(where, "node '%s' (%s): %d data inputs, the op takes %d" %
                 (n.name, n.op, len(data), len(want)))
            continue
        for (src, idx, s), (t, is_ref, argname) in zip(data, want):
            outs = outputs.get(src)
            if outs is None:
                continue
            if idx >= len(outs):
                fail(where, "node '%s': input '%s': '%s' has %d outputs" % (n.name, s, src,
                                                                             len(outs)))
                continue
            st, sref = outs[idx]
            if t is not None and st is not None and st != t:
                fail(where, "node '%s' (%s): input %s ('%s') is dtype %d, the op wants %d" %
                     (n.name, n.op, argname, s, st, t))
            if is_ref and not sref:
                fail(where, "node '%s' (%s): input %s ('%s') must be a ref (a variable)" %
                     (n.name, n.op, argname, s))
    return nodes, outputs


def tensor_exists(nodes, outputs, name):
    if ":" not in name:
        return False
    n, i = split_input(name)
    if n not in nodes:
        return False
    outs = outputs.get(n)
    return outs is None or i < len(outs)


def const_strings(nodes, name):
    n = nodes.get(name)
    if n is None or n.op != "Const":
        return None
    return [s.decode() for s in n.attr["value"].tensor.string_val]


def control_closure(nodes, start):
    """Every node start depends on (data and control), start included."""
    seen, stack = set(), [start]
    while stack:
        x = stack.pop()
        if x in seen or x not in nodes:
            continue
        seen.add(x)
        stack += [split_input(s)[0] for s in nodes[x].input]
    return seen


def check_saver(where, mg, nodes, outputs, index):
    sd = mg.saver_def
    for field in ("filename_tensor_name", "save_tensor_name"):
        name = getattr(sd, field)
        if not tensor_exists(nodes, outputs, name):
            fail(where, "SaverDef.%s '%s' is not a tensor of the graph" % (field, name))
    if sd.restore_op_name not in nodes:
        fail(where, "SaverDef.restore_op_name '%s' is not a node of the graph" %
             sd.restore_op_name)
        return
    if sd.version != saver_pb2.SaverDef.V2:
        fail(where, "SaverDef.version %d, pstrain writes V2 bundles" % sd.version)
    # What restore() runs: restore_op with the filename fed. Every variable must be assigned
    # from a RestoreV2 output inside that closure.
    closure = control_closure(nodes, sd.restore_op_name)
    fname = split_input(sd.filename_tensor_name)[0]
    restored = {}  # variable node -> (checkpoint name, slice spec)
    for x in closure:
        n = nodes[x]
        if n.op != "Assign":
            continue
        var, _ = split_input(n.input[0])
        src, idx = split_input(n.input[1])
        r = nodes.get(src)
        if r is None or r.op not in ("RestoreV2", "Identity"):
            continue
        while r.op == "Identity":
            src, idx = split_input(r.input[0])
            r = nodes[src]
        if r.op != "RestoreV2":
            continue
        if split_input(r.input[0])[0] != fname and \
                fname not in control_closure(nodes, split_input(r.input[0])[0]):
            fail(where, "%s reads its filename from '%s', not the SaverDef's '%s'" %
                 (r.name, r.input[0], sd.filename_tensor_name))
        names = const_strings(nodes, split_input(r.input[1])[0])
        specs = const_strings(nodes, split_input(r.input[2])[0])
        if names is None or specs is None or len(names) != len(specs) or idx >= len(names):
            fail(where, "%s: tensor_names/shape_and_slices are not string Consts of one length"
                 % r.name)
            continue
        dtypes = list(r.attr["dtypes"].list.type)
        if len(dtypes) != len(names):
            fail(where, "%s: %d dtypes for %d tensors" % (r.name, len(dtypes), len(names)))
        restored[var] = (names[idx], specs[idx], dtypes[idx] if idx < len(dtypes) else None)
    for cd_key in ("variables",):
        if cd_key not in mg.collection_def:
            continue
        for b in mg.collection_def[cd_key].bytes_list.value:
            vd = variable_pb2.VariableDef.FromString(b)
            v = split_input(vd.variable_name)[0]
            if v not in restored:
                fail(where, "restore op '%s' does not assign variable '%s'" %
                     (sd.restore_op_name, v))
                continue
            name, spec, dt = restored[v]
            want = vd.save_slice_info_def.full_name if vd.HasField("save_slice_info_def") else v
            if name != want:
                fail(where, "variable '%s' is restored from '%s', want '%s'" % (v, name, want))
            if vd.HasField("save_slice_info_def"):
                si = vd.save_slice_info_def
                full = " ".join(str(d) for d in si.full_shape)
                if not spec.startswith(full + " "):
                    fail(where, "variable '%s': slice spec '%s' does not start with its full "
                         "shape '%s'" % (v, spec, full))
            elif spec:
                fail(where, "variable '%s' is not sliced but restores slice '%s'" % (v, spec))
            if index is not None:
                e = index.get(name.encode())
                if e is None:
                    fail(where, "variable '%s' restores '%s', which the checkpoint lacks" %
                         (v, name))
                    continue
                if dt is not None and e.dtype != dt:
                    fail(where, "variable '%s': RestoreV2 dtype %d, checkpoint dtype %d" %
                         (v, dt, e.dtype))
                if spec:
                    # TensorSlice::Parse: "-" is the whole dimension; compare with the stored
                    # slices as TF's LookupSlice would find them.
                    full = [d.size for d in e.shape.dim]
                    parts = spec.split(" ")[-1].split(":")
                    want = []
                    for p, f in zip(parts, full):
                        st, ln = (0, f) if p == "-" else tuple(int(x) for x in p.split(","))
                        want.append((st, f if ln == -1 else ln))
                    stored = [[(x.start, x.length if x.HasField("length") else f)
                               for x, f in zip(sl.extent, full)] for sl in e.slices]
                    if want not in stored:
                        fail(where, "variable '%s': slice spec '%s' is not a slice the "
                             "checkpoint stores for '%s'" % (v, spec, name))


def check_collections(where, mg, nodes, outputs):
    for key, cd in mg.collection_def.items():
        kind = cd.WhichOneof("kind")
        if kind == "node_list":
            for v in cd.node_list.value:
                n, _ = split_input(v)
                if n not in nodes:
                    fail(where, "collection '%s' names '%s', not in the graph" % (key, v))
        if key in ("variables", "trainable_variables", "global_step", "local_variables",
                   "model_variables", "metric_variables") and kind != "bytes_list":
            fail(where, "collection '%s' is a %s; TensorFlow writes VariableDef bytes_list" %
                 (key, kind))
        if kind != "bytes_list" or key not in ("variables", "trainable_variables", "global_step",
                                               "local_variables", "model_variables",
                                               "metric_variables"):
            continue
        for b in cd.bytes_list.value:
            vd = variable_pb2.VariableDef.FromString(b)
            if has_unknown_fields(vd):
                fail(where, "collection '%s': VariableDef with fields TF does not declare" % key)
            for f in ("variable_name", "snapshot_name", "initial_value_name"):
                val = getattr(vd, f)
                if f == "initial_value_name" and not val:
                    fail(where, "collection '%s': '%s' has no initial_value_name" %
                         (key, vd.variable_name))
                    continue
                if not tensor_exists(nodes, outputs, val):
                    fail(where, "collection '%s': %s '%s' is not a tensor name of the graph" %
                         (key, f, val))
            if vd.initializer_name not in nodes:
                fail(where, "collection '%s': initializer_name '%s' is not a node" %
                     (key, vd.initializer_name))
            if vd.HasField("save_slice_info_def"):
                si = vd.save_slice_info_def
                if not (len(si.full_shape) == len(si.var_offset) == len(si.var_shape)):
                    fail(where, "'%s': SaveSliceInfoDef ranks differ" % vd.variable_name)
                for o, s, f in zip(si.var_offset, si.var_shape, si.full_shape):
                    if o < 0 or s <= 0 or o + s > f:
                        fail(where, "'%s': slice %d+%d outside %d" % (vd.variable_name, o, s, f))


def check_meta_graph(where, mg, ops, index=None):
    if has_unknown_fields(mg):
        fail(where, "holds fields TensorFlow's MetaGraphDef does not declare")
    nodes, outputs = check_graph(where, mg.graph_def, ops)
    if mg.HasField("saver_def"):
        check_saver(where, mg, nodes, outputs, index)
    check_collections(where, mg, nodes, outputs)
    for key, sig in mg.signature_def.items():
        for part in (sig.inputs, sig.outputs):
            for k, ti in part.items():
                if not tensor_exists(nodes, outputs, ti.name):
                    fail(where, "signature '%s': '%s' names '%s', not a tensor" % (key, k, ti.name))
                elif outputs.get(split_input(ti.name)[0]) and ti.dtype not in (
                        outputs[split_input(ti.name)[0]][split_input(ti.name)[1]][0],
                        outputs[split_input(ti.name)[0]][split_input(ti.name)[1]][0] + 100 *
                        outputs[split_input(ti.name)[0]][split_input(ti.name)[1]][1]):
                    fail(where, "signature '%s': '%s' dtype %d differs from the graph's" %
                         (key, k, ti.dtype))
    return len(mg.graph_def.node)


# ---- Checkpoints ---------------------------------------------------------------------------

def _crc_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


CRC_TABLE = _crc_table()


def crc32c(data, c=0):
    c ^= 0xFFFFFFFF
    tb = CRC_TABLE
    for b in data:
        c = tb[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def mask(c):
    return ((((c >> 15) | (c << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(buf, off):
    v, shift = 0, 0
    while True:
        b = buf[off]
        off += 1
        v |= (b & 0x7F) << shift
        if b < 0x80:
            return v, off
        shift += 7


def read_block(where, data, off, size):
    if off + size + 5 > len(data):
        raise ValueError("block at %d+%d past the end" % (off, size))
    contents = data[off:off + size]
    ctype = data[off + size]
    (crc,) = struct.unpack("<I", data[off + size + 1:off + size + 5])
    if mask(crc32c(data[off:off + size + 1])) != crc:
        raise ValueError("block at %d: CRC mismatch" % off)
    if ctype == 1:
        contents = snappy_uncompress(contents)
    elif ctype != 0:
        raise ValueError("block at %d: compression %d" % (off, ctype))
    (nrest,) = struct.unpack("<I", contents[-4:])
    end = len(contents) - 4 - 4 * nrest
    out, p, last = [], 0, b""
    while p < end:
        shared, p = varint(contents, p)
        non, p = varint(contents, p)
        vlen, p = varint(contents, p)
        key = last[:shared] + contents[p:p + non]
        p += non
        out.append((key, contents[p:p + vlen]))
        p += vlen
        last = key
    return out


def snappy_uncompress(src):
    """Snappy's block format (TF 1.14 wrote Snappy index blocks): a varint length, then
    literals (tag 00) and copies with 1-, 2- or 4-byte offsets (tags 01, 10, 11)."""
    n, p = varint(src, 0)
    out = bytearray()
    while p < len(src):
        tag = src[p]
        p += 1
        kind = tag & 3
        if kind == 0:
            ln = tag >> 2
            if ln >= 60:
                k = ln - 59
                ln = int.from_bytes(src[p:p + k], "little")
                p += k
            ln += 1
            out += src[p:p + ln]
            p += ln
            continue
        if kind == 1:
            ln = ((tag >> 2) & 7) + 4
            off = ((tag >> 5) << 8) | src[p]
            p += 1
        elif kind == 2:
            ln = (tag >> 2) + 1
            off = int.from_bytes(src[p:p + 2], "little")
            p += 2
        else:
            ln = (tag >> 2) + 1
            off = int.from_bytes(src[p:p + 4], "little")
            p += 4
        if off == 0 or off > len(out):
            raise ValueError("snappy: bad copy offset")
        for _ in range(ln):
            out.append(out[-off])
    if len(out) != n:
        raise ValueError("snappy: %d bytes, header says %d" % (len(out), n))
    return bytes(out)


def read_table(where, path):
    with open(path, "rb") as f:
        data = f.read()
    if len(data) < 48 or data[-8:] != bytes.fromhex("57fb808b247547db"):
        raise ValueError("no table magic")
    p = len(data) - 48
    _, p = varint(data, p)
    _, p = varint(data, p)
    ioff, p = varint(data, p)
    isize, p = varint(data, p)
    entries = []
    for _, handle in read_block(where, data, ioff, isize):
        boff, q = varint(handle, 0)
        bsize, q = varint(handle, q)
        entries += read_block(where, data, boff, bsize)
    for a, b in zip(entries, entries[1:]):
        if not a[0] < b[0]:
            raise ValueError("keys out of order: %r then %r" % (a[0], b[0]))
    return entries


def num_increasing(v):
    b = v.to_bytes((v.bit_length() + 7) // 8, "big") if v else b""
    return bytes([len(b)]) + b


def signed_num_increasing(v):
    x = ~v if v < 0 else v
    if x < 64:
        return bytes([(0x80 ^ v) & 0xFF])
    n = (x.bit_length() + 1 + 6) // 7
    buf = bytearray((v & ((1 << 80) - 1)).to_bytes(10, "big"))
    begin = buf[10 - n:]
    hdr = [(0, 0), (0x80, 0), (0xc0, 0), (0xe0, 0), (0xf0, 0), (0xf8, 0), (0xfc, 0), (0xfe, 0),
           (0xff, 0), (0xff, 0x80), (0xff, 0xc0)][n]
    begin[0] ^= hdr[0]
    begin[1] ^= hdr[1]
    return bytes(begin)


def ordered_string(s):
    return b"".join(b"\x00\xff" if c == 0 else b"\xff\x00" if c == 255 else bytes([c])
                    for c in s) + b"\x00\x01"


def slice_key(name, extents):
    """TensorFlow's checkpoint::EncodeTensorNameSlice for a slice given as (start, length)."""
    k = num_increasing(0) + ordered_string(name) + num_increasing(len(extents))
    for start, length in extents:
        k += signed_num_increasing(start) + signed_num_increasing(length)
    return k


def check_checkpoint(where, prefix):
    """Returns {key: BundleEntryProto} of the index (None when it cannot be read)."""
    try:
        entries = read_table(where, prefix + ".index")
    except (ValueError, IndexError, OSError) as e:
        fail(where, "index: %s" % e)
        return None
    if not entries or entries[0][0] != b"":
        fail(where, "index does not start with the header entry ''")
        return None
    hdr = tensor_bundle_pb2.BundleHeaderProto.FromString(entries[0][1])
    if hdr.endianness != tensor_bundle_pb2.BundleHeaderProto.LITTLE or hdr.num_shards < 1 or \
            hdr.version.producer != 1:
        fail(where, "header %s is not what TF writes" % str(hdr).replace("\n", " "))
    index = {}
    for k, v in entries[1:]:
        e = tensor_bundle_pb2.BundleEntryProto.FromString(v)
        if has_unknown_fields(e):
            fail(where, "entry %r holds fields TF does not declare" % k)
        index[k] = e
    shards = {}
    referenced = set()
    for k, e in index.items():
        if e.slices:
            full = [d.size for d in e.shape.dim]
            if e.size:
                fail(where, "partitioned '%s' carries data itself" % k.decode(errors="replace"))
            for sl in e.slices:
                if len(sl.extent) != len(full):
                    fail(where, "'%s': slice of rank %d for shape %s" % (k, len(sl.extent), full))
                    continue
                # TensorSlice(const TensorSliceProto&): a missing length means the whole dim.
                ext = [(x.start, x.length if x.HasField("length") else -1) for x in sl.extent]
                key = slice_key(k, ext)
                referenced.add(key)
                part = index.get(key)
                if part is None:
                    fail(where, "'%s': TensorFlow's reader looks slice %s up under %s, which the "
                         "index lacks" % (k.decode(), ext, key.hex()))
                    continue
                want = [f if ln < 0 else ln for (s, ln), f in zip(ext, full)]
                got = [d.size for d in part.shape.dim]
                if got != want or part.dtype != e.dtype:
                    fail(where, "'%s': slice %s holds shape %s dtype %d, want %s dtype %d" %
                         (k.decode(), ext, got, part.dtype, want, e.dtype))
            continue
        if k[:1] == b"\x00":
            continue
        if e.shard_id >= hdr.num_shards:
            fail(where, "'%s': shard %d of %d" % (k, e.shard_id, hdr.num_shards))
            continue
    for k, e in index.items():
        if e.slices:
            continue
        if k[:1] == b"\x00" and k not in referenced:
            fail(where, "slice key %s is not reachable through any partitioned entry" % k.hex())
        path = "%s.data-%05d-of-%05d" % (prefix, e.shard_id, hdr.num_shards)
        if path not in shards:
            try:
                with open(path, "rb") as f:
                    shards[path] = f.read()
            except OSError as err:
                fail(where, "%s" % err)
                shards[path] = None
        data = shards[path]
        if data is None:
            continue
        if e.offset + e.size > len(data):
            fail(where, "'%s': bytes %d+%d past the end of %s" % (k, e.offset, e.size, path))
            continue
        elems = 1
        for d in e.shape.dim:
            elems *= d.size
        if e.dtype in DTYPE_SIZE and e.size != elems * DTYPE_SIZE[e.dtype]:
            fail(where, "'%s': %d bytes for shape %s" % (k, e.size, [d.size for d in e.shape.dim]))
        if mask(crc32c(data[e.offset:e.offset + e.size])) != e.crc32c:
            fail(where, "'%s': CRC-32C mismatch" % k)
    return index


# ---- Main ----------------------------------------------------------------------------------

def main(argv):
    defs = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "tf_defs")
    metas, ckpts, saved, selftests, pairs = [], [], [], [], []
    max_meta = None
    i = 1
    while i < len(argv):
        a = argv[i]
        if a in ("--compare-saved-model", "--values-match") and i + 2 < len(argv):
            pairs.append((a, argv[i + 1], argv[i + 2]))
            i += 3
            continue
        if a in ("--defs", "--meta", "--ckpt", "--max-meta-bytes", "--saved-model",
                 "--self-test") and i + 1 < len(argv):
            v = argv[i + 1]
            if a == "--defs":
                defs = v
            elif a == "--meta":
                metas.append(v)
            elif a == "--ckpt":
                ckpts.append(v)
            elif a == "--saved-model":
                saved.append(v)
            elif a == "--self-test":
                selftests.append(v)
            else:
                max_meta = int(v)
            i += 2
        else:
            raise SystemExit(__doc__)
    load_protos(defs)
    ops = load_ops(defs)
    assert "VariableV2" in ops and "SaveV2" in ops, "ops.pbtxt lacks core ops"
    for prefix in ckpts:
        index = check_checkpoint(prefix, prefix)
        meta = prefix + ".meta"
        if os.path.exists(meta):
            metas = [m for m in metas if m != meta]
            check_meta_file(meta, ops, max_meta, index)
        if index is not None:
            print("ok %s: %d index entries" % (prefix, len(index)))
    for m in metas:
        check_meta_file(m, ops, max_meta, None)
    for d in saved:
        check_saved_model(d, ops)
    for m in selftests:
        self_test(m, ops)
    for kind, x, y in pairs:
        if kind == "--compare-saved-model":
            compare_saved_models(x, y)
        else:
            values_match(x, y)
    if failures:
        print("%d finding(s)" % len(failures))
        return 1
    return 0


def self_test(meta_path, ops):
    """The checker must catch what it is for: an encoding from FORMATS.md, a node missing a
    required attr, a node with too many inputs, a SaverDef naming an absent op, a VariableDef
    with an op name where a tensor name belongs."""
    assert slice_key(b"w", [(0, 5), (0, 4)]) == bytes.fromhex("00770001010280858084")
    assert slice_key(b"w", [(0, 5), (0, -1)]) == bytes.fromhex("0077000101028085807f")
    for v, h in [(100, "c064"), (0x424242, "f0424242"), (-0x800, "3800"), (-1, "7f")]:
        assert signed_num_increasing(v).hex() == h, (v, signed_num_increasing(v).hex())
    assert mask(crc32c(b"\x00\x00\x00\x3f")) == 0x1F273806
    with open(meta_path, "rb") as f:
        mg = meta_graph_pb2.MetaGraphDef.FromString(f.read())
    victim = next(n for n in mg.graph_def.node if n.op in ("MatMul", "Conv2D"))
    del victim.attr["T"]
    extra = next(n for n in mg.graph_def.node if n.op == "Identity")
    extra.input.insert(0, extra.input[0])
    mg.saver_def.restore_op_name = "save/no_such_op"
    vd = variable_pb2.VariableDef.FromString(mg.collection_def["variables"].bytes_list.value[0])
    vd.initial_value_name = vd.initial_value_name.rsplit(":", 1)[0]
    mg.collection_def["variables"].bytes_list.value[0] = vd.SerializeToString()
    before = len(failures)
    quiet[0] = True
    check_meta_graph("self-test", mg, ops)
    quiet[0] = False
    found = failures[before:]
    del failures[before:]
    want = ["required attr 'T' missing", "data inputs, the op takes 1",
            "restore_op_name 'save/no_such_op'", "initial_value_name"]
    for w in want:
        if not any(w in f for f in found):
            fail("self-test", "the checker missed: %s" % w)
    print("ok self-test: %d findings on the damaged copy of %s" % (len(found), meta_path))


def saved_model_shape(d):
    """The facts TF Serving's loader relies on, for a field-by-field comparison."""
    f = {}
    files = sorted(os.path.relpath(os.path.join(r, x), d) for r, _, xs in os.walk(d) for x in xs)
    f["files"] = [x for x in files if not x.startswith("assets")]
    with open(os.path.join(d, "saved_model.pb"), "rb") as fh:
        sm = saved_model_pb2.SavedModel.FromString(fh.read())
    f["schema_version"] = sm.saved_model_schema_version
    f["meta_graphs"] = len(sm.meta_graphs)
    mg = sm.meta_graphs[0]
    nodes = {n.name: n for n in mg.graph_def.node}
    f["tags"] = list(mg.meta_info_def.tags)
    sd = mg.saver_def
    f["saver_version"] = sd.version
    f["saver_fields_set"] = sorted(x.name for x, _ in sd.ListFields()
                                   if x.name in ("filename_tensor_name", "save_tensor_name",
                                                 "restore_op_name", "version"))
    fn = nodes.get(split_input(sd.filename_tensor_name)[0])
    f["filename_tensor"] = (fn.op, fn.attr["dtype"].type if "dtype" in fn.attr else None) if fn \
        else None
    ro = nodes.get(sd.restore_op_name)
    f["restore_op"] = ro.op if ro else None
    st = nodes.get(split_input(sd.save_tensor_name)[0])
    f["save_tensor_dtype"] = st.attr["T"].type if st is not None and "T" in st.attr else None
    sig = mg.signature_def.get("serving_default")
    f["serving_default_method"] = sig.method_name if sig else None
    infos = list(sig.inputs.values()) + list(sig.outputs.values()) if sig else []
    f["tensor_infos_named_set_shaped"] = all(
        ":" in t.name and t.dtype != 0 and t.HasField("tensor_shape") and
        t.tensor_shape.dim and t.tensor_shape.dim[0].size == -1 for t in infos) and bool(infos)
    f["tensor_infos_exist"] = all(split_input(t.name)[0] in nodes for t in infos)
    f["variables_collection"] = mg.collection_def["variables"].WhichOneof("kind") \
        if "variables" in mg.collection_def else None
    entries = read_table(d, os.path.join(d, "variables", "variables.index"))
    hdr = tensor_bundle_pb2.BundleHeaderProto.FromString(entries[0][1])
    f["index_num_shards"] = hdr.num_shards
    f["index_header_version"] = hdr.version.producer
    keys = {k.decode() for k, _ in entries[1:]}
    vnames = [split_input(variable_pb2.VariableDef.FromString(b).variable_name)[0]
              for b in mg.collection_def["variables"].bytes_list.value]
    f["every_variable_in_index"] = bool(vnames) and all(v in keys for v in vnames)
    return f


def compare_saved_models(ours, theirs):
    a, b = saved_model_shape(ours), saved_model_shape(theirs)
    for k in b:
        if a[k] != b[k]:
            fail(ours, "SavedModel field '%s' is %r, TensorFlow's (%s) has %r" % (k, a[k], theirs,
                                                                                b[k]))
        else:
            print("ok %s: %s = %r as in TensorFlow's" % (ours, k, a[k]))
    base = os.path.basename(os.path.normpath(ours))
    if not base.isdigit():
        fail(ours, "the version directory '%s' is not a number TF Serving loads" % base)


def values_match(a, b):
    """Every tensor of checkpoint a is in checkpoint b (unpartitioned) with the same bytes."""
    def load(prefix):
        entries = read_table(prefix, prefix + ".index")
        hdr = tensor_bundle_pb2.BundleHeaderProto.FromString(entries[0][1])
        out = {}
        for k, v in entries[1:]:
            e = tensor_bundle_pb2.BundleEntryProto.FromString(v)
            if e.slices or k[:1] == b"\x00":
                continue
            with open("%s.data-%05d-of-%05d" % (prefix, e.shard_id, hdr.num_shards), "rb") as f:
                f.seek(e.offset)
                out[k] = f.read(e.size)
        return out
    ta, tb = load(a), load(b)
    for k, v in ta.items():
        if tb.get(k) != v:
            fail(a, "tensor '%s' differs from %s's" % (k.decode(), b))
    print("ok %s: %d tensors equal to %s's" % (a, len(ta), b))


def check_meta_file(path, ops, max_meta, index):
    size = os.path.getsize(path)
    if max_meta is not None and size > max_meta:
        fail(path, "%d bytes, more than %d" % (size, max_meta))
    with open(path, "rb") as f:
        mg = meta_graph_pb2.MetaGraphDef.FromString(f.read())
    n = check_meta_graph(path, mg, ops, index)
    print("ok %s: %d nodes, %d bytes" % (path, n, size))


def check_saved_model(d, ops):
    with open(os.path.join(d, "saved_model.pb"), "rb") as f:
        sm = saved_model_pb2.SavedModel.FromString(f.read())
    if has_unknown_fields(sm):
        fail(d, "saved_model.pb holds fields TF does not declare")
    index = check_checkpoint(d, os.path.join(d, "variables", "variables"))
    for mg in sm.meta_graphs:
        check_meta_graph(d, mg, ops, index)
    print("ok %s: %d meta graph(s)" % (d, len(sm.meta_graphs)))


if __name__ == "__main__":
    sys.exit(main(sys.argv))
