"""featgrid's on-demand transformation worker: runs Feast's own on-demand feature view code.

featgrid (src/ondemand/) starts a few of these with the Python of the Feast environment and
talks to each over a unix socket. The worker loads the Feast registry file, builds each
OnDemandFeatureView from its proto with Feast's `OnDemandFeatureView.from_proto`, and answers
one request at a time:

    request:  u32 header length, header (JSON), u32 body length, body (Arrow IPC stream)
    answer:   the same framing; the header is {"ok": true} or {"error": "...", "kind": "..."}

Under load featgrid sends several requests at once: every frame of such a batch but the last
carries `more` (how many frames follow). Each is run on its own, exactly as if sent alone, and
the answers are sent together, in order, after the last one's (one write instead of one each).

Header fields: `registry_version` (the registry is read again when it changed), `op`, and
- "read": `views`, each {`view`, `requested`, `name_to_use`}, all run on the one input batch
  (`transform_dict` / `transform_arrow`, as Feast's feature server does at read time, keeping the
  `requested` output columns in the transformation's order), and `full_feature_names`; the
  answer's body holds one part per view, in order: a u32 length and an Arrow IPC stream;
- "write": `view`, run as Feast's `FeatureStore._transform_on_demand_feature_view_df` does for
  `write_to_online_store` of a view with write_to_online_store=True; the body is one stream.
An error answer names the view that failed (`view`).

All integers are little-endian. Everything the worker prints goes to stderr, which featgrid logs.
"""

import argparse
import gc
import json
import os
import socket
import struct
import sys
import traceback


def read_exact(stream, n):
    data = stream.read(n)
    if len(data) < n:
        raise EOFError("featgrid closed the connection")
    return data


def read_frame(stream):
    """One frame from `stream`, a buffered reader of the socket: a frame featgrid wrote at once
    is read with one system call."""
    (header_len,) = struct.unpack("<I", read_exact(stream, 4))
    header = json.loads(read_exact(stream, header_len))
    (body_len,) = struct.unpack("<I", read_exact(stream, 4))
    body = read_exact(stream, body_len) if body_len else b""
    return header, body


def frame(header, body=b""):
    text = json.dumps(header).encode()
    return b"".join((struct.pack("<I", len(text)), text, struct.pack("<I", len(body)), body))


def send_frame(conn, header, body=b""):
    conn.sendall(frame(header, body))


class Views:
    """The project's on-demand views, built from the registry file as Feast builds them."""

    def __init__(self, registry_path, project, repo):
        self.registry_path = registry_path
        self.project = project
        self.repo = repo
        self.version = None
        self.protos = {}
        self.built = {}
        self.store = None

    def load(self, version):
        from feast.protos.feast.core.Registry_pb2 import Registry as RegistryProto

        proto = RegistryProto()
        with open(self.registry_path, "rb") as f:
            proto.ParseFromString(f.read())
        self.protos = {
            v.spec.name: v
            for v in proto.on_demand_feature_views
            if v.spec.project == self.project
        }
        self.built = {}
        self.store = None
        self.version = version if version is not None else proto.version_id

    def get(self, name, version):
        if version != self.version or name not in self.protos:
            self.load(version)
        if name not in self.built:
            from feast.on_demand_feature_view import OnDemandFeatureView

            if name not in self.protos:
                raise LookupError(f"on-demand feature view '{name}' is not in {self.registry_path}")
            self.built[name] = OnDemandFeatureView.from_proto(self.protos[name])
        return self.built[name]

    def feature_store(self):
        if self.store is None:
            from feast import FeatureStore

            self.store = FeatureStore(repo_path=self.repo)
        return self.store


def python_outputs(output, requested, full_feature_names, name_to_use):
    """The requested outputs of a python-mode view, in the transformation's order. With full
    feature names they are asked for as `view__feature`, which `transform_dict` does not name
    them: Feast's server then leaves them out of its answer; featgrid answers them."""
    import pyarrow as pa

    arrays, names = [], []
    for c, values in output.items():
        full = f"{name_to_use}__{c}"
        if c in requested:
            name = c
        elif full_feature_names and full in requested:
            name = full
        else:
            continue
        arrays.append(pa.array(values if isinstance(values, list) else [values]))
        names.append(name)
    return pa.table(arrays, names=names) if names else pa.table({})


def read_time(odfv, table, requested, full_feature_names, name_to_use):
    """What feast/utils.py `_augment_response_with_on_demand_transforms` does for one view."""
    import pyarrow as pa
    import pandas as pd

    if odfv.mode == "python" and odfv.singleton:
        # Feast's transform_singleton takes the first row only; each row is transformed here,
        # which is the same answer for one row and the right one for several.
        data = table.to_pydict()
        output = {}
        for i in range(table.num_rows):
            row = odfv.transform_dict({k: [v[i]] for k, v in data.items()})
            for k, v in row.items():
                output.setdefault(k, []).append(v)
        return python_outputs(output, requested, full_feature_names, name_to_use)
    if odfv.mode == "python":
        output = odfv.transform_dict(table.to_pydict())
        return python_outputs(output, requested, full_feature_names, name_to_use)
    # Feast builds the pandas input from its response dict: OnlineResponse.to_arrow().
    initial = pa.Table.from_pandas(pd.DataFrame(table.to_pydict()))
    output = odfv.transform_arrow(initial, full_feature_names)
    selected = [c for c in output.column_names if c in requested]
    return output.select(selected)


def write_time(views, odfv, table):
    """What FeatureStore.write_to_online_store does to the df of a write-time view."""
    import pyarrow as pa

    df = table.to_pandas()
    out = views.feature_store()._transform_on_demand_feature_view_df(odfv, df)
    if not isinstance(out, pa.Table):
        out = pa.Table.from_pandas(out, preserve_index=False)
    return out


def ipc_bytes(table):
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def serve(conn, views):
    import pyarrow as pa

    stream = conn.makefile("rb", buffering=1 << 16)
    answers = []
    while True:
        try:
            header, body = read_frame(stream)
        except EOFError:
            return
        more = int(header.get("more") or 0)
        name = header.get("view", "?")
        try:
            version = header.get("registry_version")
            table = pa.ipc.open_stream(body).read_all() if body else pa.table({})
            if header.get("op") == "write":
                answer = ipc_bytes(write_time(views, views.get(name, version), table))
            else:
                parts = []
                for call in header.get("views") or []:
                    name = call["view"]
                    out = read_time(
                        views.get(name, version),
                        table,
                        set(call.get("requested") or []),
                        bool(header.get("full_feature_names")),
                        call.get("name_to_use") or name,
                    )
                    part = ipc_bytes(out)
                    parts += [struct.pack("<I", len(part)), part]
                answer = b"".join(parts)
            answers.append(frame({"ok": True}, answer))
        except Exception as e:  # the UDF's own errors: answered, the worker goes on
            traceback.print_exc(file=sys.stderr)
            sys.stderr.flush()
            answers.append(frame({"error": f"{type(e).__name__}: {e}", "kind": "transform", "view": name}))
        if not more:
            conn.sendall(b"".join(answers))
            answers.clear()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", required=True)
    parser.add_argument("--registry", required=True)
    parser.add_argument("--project", required=True)
    parser.add_argument("--repo", required=True)
    args = parser.parse_args()
    # The views' functions are pickled by reference to the repo's modules, as `feast apply`
    # imported them: the repo must be importable, as it is for `feast serve`.
    os.chdir(args.repo)
    sys.path.insert(0, args.repo)
    conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    conn.connect(args.socket)
    try:
        import feast
        import pyarrow  # noqa: F401
        import pandas  # noqa: F401
        from feast.on_demand_feature_view import OnDemandFeatureView  # noqa: F401

        views = Views(args.registry, args.project, args.repo)
        views.load(None)
    except Exception as e:
        traceback.print_exc(file=sys.stderr)
        send_frame(conn, {"error": f"cannot load Feast: {type(e).__name__}: {e}", "kind": "start"})
        return 1
    # What is loaded now lives as long as the worker: out of the collector's sight, so that a
    # full collection (about 100 ms over Feast's, pandas' and pyarrow's objects) never stalls
    # a transformation.
    gc.collect()
    gc.freeze()
    send_frame(conn, {"ok": True, "feast_version": getattr(feast, "__version__", "?"), "pid": os.getpid()})
    serve(conn, views)
    return 0


if __name__ == "__main__":
    sys.exit(main())
