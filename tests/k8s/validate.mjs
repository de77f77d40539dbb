// Offline validation of Kubernetes manifests (tests/test_kubernetes.sh).
//
//   node validate.mjs FILE.yaml...
//
// Every document of every file is checked three ways, and every problem is printed as
// "FILE: Kind/name: path: what" (exit status 1 when there is any):
//   1. Kubernetes' OpenAPI schema, through the npm package kubernetes-models (types, required
//      fields, enums, formats);
//   2. field names: a field the schema does not know is an error (the API server drops or
//      refuses those; a typo such as "imag" would otherwise pass 1), read from the same
//      package's type declarations;
//   3. the documents together: names that refer to other objects (a StatefulSet's serviceName,
//      a pod's subdomain, ConfigMaps, Secrets, claims, volume mounts, named ports), rules the
//      API server checks beyond the schema (a Job's backoffLimitPerIndex needs restartPolicy
//      Never; a StatefulSet's selector matches its pods), and pstrain's own: the task counts
//      and port of the ConfigMap "pstrain-job" equal the PS StatefulSet's replicas, the worker
//      Job's completions and parallelism, and the containers' and Services' ports.
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import * as yaml from "js-yaml";

const here = path.dirname(fileURLToPath(import.meta.url));
const modules = path.join(here, "node_modules");
const problems = [];
const where = (d) => `${d.file}: ${d.doc.kind}/${d.doc.metadata?.name ?? "?"}`;
const problem = (d, msg) => problems.push(`${where(d)}: ${msg}`);

// ---- 1. the schema ----------------------------------------------------------------------------
function modelPath(apiVersion, kind) {
  const [group, version] = apiVersion.includes("/") ? apiVersion.split("/") : [null, apiVersion];
  return path.join(modules, "kubernetes-models", ...(group ? [group] : []), version, kind);
}

async function checkSchema(d) {
  const { apiVersion, kind } = d.doc;
  if (typeof apiVersion !== "string" || typeof kind !== "string") {
    problem(d, "apiVersion and kind must be strings");
    return null;
  }
  const base = modelPath(apiVersion, kind);
  if (!fs.existsSync(base + ".js")) {
    problem(d, `no such kind ${kind} in ${apiVersion}`);
    return null;
  }
  const cls = (await import(base + ".js"))[kind];
  try {
    new cls(d.doc).validate();
  } catch (e) {
    for (const line of String(e.message).split(/\n|, (?=data)/)) if (line.trim()) problem(d, line.trim());
  }
  return base + ".d.ts";
}

// ---- 2. field names from the type declarations --------------------------------------------------
const interfaces = new Map(); // d.ts path -> {fields: Map(name -> type name or null)} or null

function readInterface(file) {
  if (interfaces.has(file)) return interfaces.get(file);
  let result = null;
  if (fs.existsSync(file)) {
    const text = fs.readFileSync(file, "utf8");
    const imports = new Map();
    for (const m of text.matchAll(/^import \{ (\w+) \} from "([^"]+)";$/gm)) {
      const spec = m[2].replace(/\.js$/, "");
      const resolved = spec.startsWith(".")
        ? path.resolve(path.dirname(file), spec)
        : path.join(modules, spec);
      imports.set(m[1], resolved + ".d.ts");
    }
    const body = text.match(/^export interface \w+(?: extends [\w, ]+)? \{\n([\s\S]*?)^\}/m);
    if (body) {
      result = new Map();
      for (const m of body[1].matchAll(/^ {4}"([^"]+)"\??: (.*)$/gm)) {
        const type = m[2].replace(/;$/, "");
        const named = type.match(/^(?:Array<)?(I\w+)>?$/);
        result.set(m[1], named && imports.has(named[1]) ? imports.get(named[1]) : null);
      }
    }
  }
  interfaces.set(file, result);
  return result;
}

function checkFields(d, value, dts, at) {
  const fields = dts && readInterface(dts);
  if (!fields || value === null || typeof value !== "object") return;
  if (Array.isArray(value)) {
    value.forEach((v, i) => checkFields(d, v, dts, `${at}[${i}]`));
    return;
  }
  for (const [k, v] of Object.entries(value)) {
    const p = at ? `${at}.${k}` : k;
    if (!fields.has(k)) problem(d, `${p}: unknown field (the schema has ${[...fields.keys()].join(", ")})`);
    else checkFields(d, v, fields.get(k), p);
  }
}

// ---- 3. the documents together ----------------------------------------------------------------
const subset = (small = {}, big = {}) => Object.entries(small).every(([k, v]) => big[k] === v);

function checkTogether(docs) {
  const find = (kind, name) => docs.find((x) => x.doc.kind === kind && x.doc.metadata?.name === name);
  const podOwners = docs.filter((x) => ["StatefulSet", "Job", "Deployment"].includes(x.doc.kind));
  for (const d of podOwners) {
    const spec = d.doc.spec ?? {};
    const pod = spec.template?.spec ?? {};
    const labels = spec.template?.metadata?.labels ?? {};
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    const ports = new Set();
    for (const c of [...(pod.initContainers ?? []), ...(pod.containers ?? [])]) {
      for (const p of c.ports ?? []) if (p.name) ports.add(p.name);
      for (const m of c.volumeMounts ?? [])
        if (!volumes.has(m.name)) problem(d, `container ${c.name}: volumeMount '${m.name}' names no volume of the pod`);
      for (const e of c.envFrom ?? []) {
        if (e.configMapRef && !e.configMapRef.optional && !find("ConfigMap", e.configMapRef.name))
          problem(d, `container ${c.name}: envFrom ConfigMap '${e.configMapRef.name}' is not among the manifests`);
        if (e.secretRef && !e.secretRef.optional && !find("Secret", e.secretRef.name))
          problem(d, `container ${c.name}: envFrom Secret '${e.secretRef.name}' is not among the manifests`);
      }
    }
    for (const v of volumes.values()) {
      if (v.secret && !v.secret.optional && !find("Secret", v.secret.secretName))
        problem(d, `volume ${v.name}: Secret '${v.secret.secretName}' is not among the manifests`);
      if (v.configMap && !v.configMap.optional && !find("ConfigMap", v.configMap.name))
        problem(d, `volume ${v.name}: ConfigMap '${v.configMap.name}' is not among the manifests`);
      if (v.persistentVolumeClaim && !find("PersistentVolumeClaim", v.persistentVolumeClaim.claimName))
        problem(d, `volume ${v.name}: PersistentVolumeClaim '${v.persistentVolumeClaim.claimName}' is not among the manifests`);
    }
    const headless = (field, name) => {
      const svc = find("Service", name);
      if (!svc) return problem(d, `${field} '${name}' names no Service among the manifests`);
      if (svc.doc.spec?.clusterIP !== "None") problem(d, `${field} '${name}': the Service must be headless (clusterIP: None) for per-pod DNS names`);
      if (!subset(svc.doc.spec?.selector, labels)) problem(d, `${field} '${name}': the Service's selector does not select this workload's pods`);
      for (const p of svc.doc.spec?.ports ?? [])
        if (typeof p.targetPort === "string" && !ports.has(p.targetPort))
          problem(d, `${field} '${name}': the Service's targetPort '${p.targetPort}' is no named port of the pods`);
    };
    if (d.doc.kind === "StatefulSet") {
      if (spec.serviceName) headless("spec.serviceName", spec.serviceName);
      if (!subset(spec.selector?.matchLabels, labels)) problem(d, "spec.selector.matchLabels does not match spec.template.metadata.labels");
      if ((pod.restartPolicy ?? "Always") !== "Always") problem(d, "a StatefulSet's pods must have restartPolicy Always");
    }
    if (pod.subdomain) headless("spec.template.spec.subdomain", pod.subdomain);
    if (d.doc.kind === "Job") {
      const rp = pod.restartPolicy;
      if (rp !== "Never" && rp !== "OnFailure") problem(d, "a Job's pods need restartPolicy Never or OnFailure");
      if ((spec.backoffLimitPerIndex !== undefined || spec.podFailurePolicy) && rp !== "Never")
        problem(d, "backoffLimitPerIndex and podFailurePolicy need restartPolicy Never");
      if (spec.backoffLimitPerIndex !== undefined && spec.completionMode !== "Indexed")
        problem(d, "backoffLimitPerIndex needs completionMode Indexed");
    }
  }

  // pstrain's settings against the workloads they describe.
  const cm = find("ConfigMap", "pstrain-job");
  if (!cm) return;
  const env = cm.doc.data ?? {};
  const psName = env.PST_PS_NAME ?? "pstrain-ps";
  const workerName = env.PST_WORKER_NAME ?? "pstrain-worker";
  const port = Number(env.PST_PORT ?? 2222);
  const ps = find("StatefulSet", psName);
  const workers = find("Job", workerName) ?? find("StatefulSet", workerName);
  if (!ps) problem(cm, `PST_PS_NAME: no StatefulSet '${psName}' among the manifests`);
  if (!workers) problem(cm, `PST_WORKER_NAME: no Job or StatefulSet '${workerName}' among the manifests`);
  if (ps && String(ps.doc.spec?.replicas ?? 1) !== env.PST_NUM_PS)
    problem(cm, `PST_NUM_PS '${env.PST_NUM_PS}' is not the replicas (${ps.doc.spec?.replicas ?? 1}) of StatefulSet ${psName}`);
  if (workers) {
    const s = workers.doc.spec ?? {};
    const counts = workers.doc.kind === "Job" ? { completions: s.completions, parallelism: s.parallelism } : { replicas: s.replicas };
    for (const [k, v] of Object.entries(counts))
      if (String(v ?? 1) !== env.PST_NUM_WORKERS)
        problem(cm, `PST_NUM_WORKERS '${env.PST_NUM_WORKERS}' is not the ${k} (${v ?? 1}) of ${workers.doc.kind} ${workerName}`);
  }
  for (const w of [ps, workers].filter(Boolean)) {
    const name = w.doc.metadata.name;
    if (find("Service", name)?.doc.spec?.ports?.[0]?.port !== port)
      problem(cm, `PST_PORT ${port} is not the port of Service ${name}`);
    for (const c of w.doc.spec?.template?.spec?.containers ?? [])
      if (!(c.ports ?? []).some((p) => p.containerPort === port))
        problem(cm, `PST_PORT ${port} is not a containerPort of ${w.doc.kind} ${name} (container ${c.name})`);
  }
}

// ---- main -------------------------------------------------------------------------------------
const files = process.argv.slice(2);
if (files.length === 0) {
  console.error("usage: node validate.mjs FILE.yaml...");
  process.exit(2);
}
const docs = [];
for (const file of files) {
  let loaded;
  try {
    loaded = yaml.loadAll(fs.readFileSync(file, "utf8"));
  } catch (e) {
    problems.push(`${file}: ${e.message.split("\n")[0]}`);
    continue;
  }
  for (const doc of loaded) {
    if (doc === null || doc === undefined) continue;
    if (typeof doc !== "object" || Array.isArray(doc)) {
      problems.push(`${file}: a document is not a mapping`);
      continue;
    }
    docs.push({ file: path.basename(file), doc });
  }
}
for (const d of docs) {
  const dts = await checkSchema(d);
  if (dts) checkFields(d, d.doc, dts, "");
}
checkTogether(docs);
for (const p of problems) console.log(p);
if (problems.length) process.exit(1);
for (const d of docs) console.log(`${where(d)}: valid`);
