// Prints a ConfigMap's data as shell `export NAME='value'` lines (tests/test_kubernetes.sh
// gives the entrypoint the environment a pod gets through envFrom).
//
//   node configmap_env.mjs configmap.yaml
import fs from "node:fs";
import * as yaml from "js-yaml";

const cm = yaml.load(fs.readFileSync(process.argv[2], "utf8"));
for (const [k, v] of Object.entries(cm?.data ?? {})) {
  if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) throw new Error(`${process.argv[2]}: '${k}' is no variable name`);
  console.log(`export ${k}='${String(v).replace(/'/g, "'\\''")}'`);
}
