// The submit form (`#/submit`, or `#/submit?from=<id>` to start from a job's spec). The API is the one
// validator: the form sends what was typed (numbers as numbers, anything else as typed) and shows each
// 422 error next to the field it names. The normalization is one choice (none, batch, layer, group); the
// form sends it with the batch_norm it implies, so a spec read from an older job (batch_norm only) and
// the API agree. Group norm's groups show for group, noisy BN's two parameters for batch.

import { ApiError, getJson, postJson } from "./api.js";
import { errorBox, h, isAbort } from "./dom.js";

const DEFAULT_SPEC = {
  name: "",
  architecture: { kind: "mlp", hidden: [100, 100, 100], channels: [16, 32], activation: "sigmoid" },
  batch_norm: true,
  normalization: "batch",
  groups: null,
  bn_noise: null,
  learning_rate: 0.1,
  dropout: 0,
  dataset: "digits",
  optimizer: "sgd",
  batch_size: 60,
  steps: 2000,
  seed: 0,
  device: "auto",
  eval_every: 10,
  target_accuracy: 0.9,
  telemetry_every: 100,
  telemetry_mode: "inference",
  landscape_every: 0,
  init: "default",
  init_std: 0.01,
  bn_momentum: 0.1,
  bn_eps: 1e-5,
  bn_implementation: "torch",
  checkpoint_every: 500,
};

// name: the spec field (dotted into architecture); kind: how the typed text becomes JSON.
const GROUPS = [
  {
    title: "Model",
    fields: [
      { name: "name", label: "Name", kind: "text", help: "shown in tables and plots" },
      { name: "architecture.kind", label: "Architecture", kind: "select", options: ["mlp", "cnn"] },
      { name: "architecture.hidden", label: "Hidden widths", kind: "list", help: "units per hidden layer, e.g. 100, 100, 100", when: "mlp" },
      { name: "architecture.channels", label: "Conv channels", kind: "list", help: "channels per 3×3 conv block, e.g. 16, 32", when: "cnn" },
      { name: "architecture.activation", label: "Activation", kind: "select", options: ["sigmoid", "tanh", "relu"] },
      { name: "normalization", label: "Normalization", kind: "select", options: ["none", "batch", "layer", "group"], help: "before every hidden nonlinearity: batch norm (the paper's), layer or group norm, or none" },
      { name: "groups", label: "Groups", kind: "optional-number", help: "group norm's groups, dividing every width; empty: up to 32 per layer", shownWith: ["normalization", "group"] },
      { name: "dropout", label: "Dropout", kind: "number", help: "0 ≤ p < 1" },
    ],
  },
  {
    title: "Training",
    fields: [
      { name: "dataset", label: "Dataset", kind: "select", options: ["digits", "spirals", "mnist", "fashion_mnist"] },
      { name: "optimizer", label: "Optimizer", kind: "select", options: ["sgd", "momentum", "adam"] },
      { name: "learning_rate", label: "Learning rate", kind: "number" },
      { name: "batch_size", label: "Batch size", kind: "number" },
      { name: "steps", label: "Steps", kind: "number" },
      { name: "seed", label: "Seed", kind: "number" },
      { name: "device", label: "Device", kind: "text", help: "auto, cpu, cuda or cuda:N" },
    ],
  },
  {
    title: "Measuring",
    fields: [
      { name: "eval_every", label: "Evaluate every", kind: "number", help: "steps; steps to target is resolved to this" },
      { name: "target_accuracy", label: "Target accuracy", kind: "optional-number", help: "empty: no target" },
      { name: "telemetry_every", label: "Telemetry every", kind: "number", help: "steps; 0 = off (the Fig. 1 percentiles, the gradient-based ICS)" },
      { name: "telemetry_mode", label: "Telemetry mode", kind: "select", options: ["inference", "train"], help: "inference: held-out probe, BN by its population statistics (as the paper); train: BN by the probe batch" },
      { name: "landscape_every", label: "Landscape every", kind: "number", help: "steps; 0 = off" },
    ],
  },
  {
    title: "More",
    collapsed: true,
    fields: [
      { name: "init", label: "Initialization", kind: "select", options: ["default", "he", "xavier", "gaussian"] },
      { name: "init_std", label: "Gaussian init std", kind: "number", help: "only for init = gaussian" },
      { name: "bn_momentum", label: "BN momentum", kind: "number" },
      { name: "bn_eps", label: "BN epsilon", kind: "number" },
      { name: "bn_implementation", label: "BN implementation", kind: "select", options: ["torch", "bnlab"] },
      { name: "bn_noise.mean_std", label: "Noisy BN: shift std", kind: "optional-number", help: "noise after each BN layer (Santurkar et al.): m ~ N(0, std²); both empty: no noise", shownWith: ["normalization", "batch"] },
      { name: "bn_noise.scale_std", label: "Noisy BN: log-scale std", kind: "optional-number", help: "the factor s with log s ~ N(0, std²); empty: 0.5 when the shift std is set", shownWith: ["normalization", "batch"] },
      { name: "checkpoint_every", label: "Checkpoint every", kind: "number", help: "steps; 0 = never" },
    ],
  },
];
const FIELDS = GROUPS.flatMap((group) => group.fields);

// Errors the API places on fields the form shows as another: batch_norm is set by the normalization, and an
// error on the noise as a whole goes next to its first parameter.
const ERROR_SLOT = { batch_norm: "normalization", bn_noise: "bn_noise.mean_std" };

function elementId(name) {
  return `field-${name.replace(".", "-")}`;
}

function errorId(name) {
  return `error-${name.replace(".", "-")}`;
}

function read(spec, name) {
  return name.split(".").reduce((value, part) => value?.[part], spec);
}

/** Typed text as JSON: a number when it reads as one, otherwise the text itself for the API to judge. */
function parseNumber(text) {
  const trimmed = text.trim();
  const number = Number(trimmed);
  return trimmed !== "" && Number.isFinite(number) ? number : trimmed;
}

function displayValue(field, value) {
  if (field.kind === "list") return (value ?? []).join(", ");
  if (value === null || value === undefined) return "";
  return String(value);
}

function control(field, value) {
  const common = { id: elementId(field.name), name: field.name, "aria-describedby": errorId(field.name) };
  if (field.kind === "select") {
    return h("select", { ...common, value }, field.options.map((option) => h("option", { value: option }, option)));
  }
  if (field.kind === "checkbox") return h("input", { ...common, type: "checkbox", checked: Boolean(value) });
  const numeric = field.kind === "number" || field.kind === "optional-number";
  return h("input", { ...common, type: "text", value: displayValue(field, value), inputmode: numeric ? "decimal" : null, autocomplete: "off" });
}

function fieldRow(field, value) {
  return h(
    "div",
    {
      class: `field field-${field.kind}`,
      "data-field": field.name,
      "data-when": field.when ?? null,
      "data-shown-field": field.shownWith?.[0] ?? null,
      "data-shown-value": field.shownWith?.[1] ?? null,
    },
    h("label", { for: elementId(field.name) }, field.label),
    control(field, value),
    field.help ? h("small", { class: "help" }, field.help) : null,
    h("p", { class: "field-error", id: errorId(field.name), hidden: true }),
  );
}

/** The JSON body from the form: the spec exactly as typed. */
function specFromForm(form) {
  const value = (name) => form.elements[name];
  const spec = {};
  for (const field of FIELDS) {
    if (field.name.startsWith("architecture.") || field.name.startsWith("bn_noise.")) continue;
    const input = value(field.name);
    if (field.kind === "checkbox") spec[field.name] = input.checked;
    else if (field.kind === "number") spec[field.name] = parseNumber(input.value);
    else if (field.kind === "optional-number") spec[field.name] = input.value.trim() === "" ? null : parseNumber(input.value);
    else spec[field.name] = input.value;
  }
  spec.batch_norm = spec.normalization === "batch";
  if (spec.normalization !== "group") delete spec.groups; // hidden: the API refuses groups for other kinds
  const noise = {};
  for (const part of ["mean_std", "scale_std"]) {
    const typed = value(`bn_noise.${part}`).value.trim();
    if (typed !== "") noise[part] = parseNumber(typed);
  }
  spec.bn_noise = spec.normalization === "batch" && Object.keys(noise).length ? noise : null;
  const kind = value("architecture.kind").value;
  const layers = kind === "cnn" ? "channels" : "hidden";
  spec.architecture = {
    kind,
    [layers]: value(`architecture.${layers}`).value.split(/[\s,]+/).filter(Boolean).map(parseNumber),
    activation: value("architecture.activation").value,
  };
  return spec;
}

/**
 * Which form field a 422 error's `loc` names: ["body", "learning_rate"] → learning_rate;
 * ["body", "architecture", "mlp", "hidden", 2] → architecture.hidden (the third width).
 */
export function fieldOf(loc) {
  const parts = loc[0] === "body" ? loc.slice(1) : loc;
  if (parts[0] === "bn_noise" && typeof parts[1] === "string") return { name: `bn_noise.${parts[1]}` };
  if (parts[0] !== "architecture") return { name: ERROR_SLOT[parts[0]] ?? String(parts[0] ?? ""), index: parts[1] };
  const rest = ["mlp", "cnn"].includes(parts[1]) ? parts.slice(2) : parts.slice(1);
  return typeof rest[0] === "string" ? { name: `architecture.${rest[0]}`, index: rest[1] } : { name: "architecture.kind" };
}

function showErrors(form, general, errors) {
  for (const error of errors) {
    const { name, index } = fieldOf(error.loc ?? []);
    const message = `${Number.isInteger(index) ? `item ${index + 1}: ` : ""}${String(error.msg).replace(/^Value error, /, "")}`;
    const slot = form.querySelector(`#${errorId(name)}`);
    if (!slot) {
      general.append(errorBox(`${name || "request"}: ${message}`));
      continue;
    }
    slot.hidden = false;
    slot.append(h("span", {}, message));
    form.elements[name]?.setAttribute("aria-invalid", "true");
  }
  form.querySelector(".field-error:not([hidden])")?.closest(".field")?.querySelector("input, select")?.focus();
}

function clearErrors(form, general) {
  general.replaceChildren();
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.hidden = true;
    slot.replaceChildren();
  }
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
}

function buildForm(spec, life) {
  const merged = { ...DEFAULT_SPEC, ...spec, architecture: { ...DEFAULT_SPEC.architecture, ...spec.architecture } };
  if (spec.normalization === undefined && spec.batch_norm !== undefined) merged.normalization = spec.batch_norm ? "batch" : "none";
  merged.bn_noise = merged.bn_noise ?? {}; // its parameters' inputs start empty without noise
  const general = h("div", { class: "messages", id: "submit-errors" });
  const submitButton = h("button", { type: "submit", class: "primary", id: "submit-job" }, "Submit job");
  const form = h(
    "form",
    { class: "spec-form", id: "submit-form", novalidate: true },
    GROUPS.map((group) => {
      const rows = group.fields.map((field) => fieldRow(field, read(merged, field.name)));
      return group.collapsed
        ? h("details", { class: "group" }, h("summary", {}, group.title), h("div", { class: "fields" }, rows))
        : h("fieldset", { class: "group" }, h("legend", {}, group.title), h("div", { class: "fields" }, rows));
    }),
    general,
    h("div", { class: "actions" }, submitButton),
  );
  const showLayersOfKind = () => {
    const kind = form.elements["architecture.kind"].value;
    for (const row of form.querySelectorAll("[data-when]")) row.hidden = row.dataset.when !== kind;
    for (const row of form.querySelectorAll("[data-shown-field]")) row.hidden = form.elements[row.dataset.shownField].value !== row.dataset.shownValue;
  };
  form.elements["architecture.kind"].addEventListener("change", showLayersOfKind);
  form.elements.normalization.addEventListener("change", showLayersOfKind);
  showLayersOfKind();

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors(form, general);
    submitButton.disabled = true;
    try {
      const job = await postJson("/v1/jobs", specFromForm(form), { signal: life.signal });
      location.hash = `#/jobs/${job.id}`;
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof ApiError && error.status === 422 && error.fieldErrors.length) showErrors(form, general, error.fieldErrors);
      else general.append(errorBox(error));
    } finally {
      submitButton.disabled = false;
    }
  });
  return form;
}

export function submitPage(root, query, life) {
  const from = query.get("from");
  root.append(
    h("h1", {}, "Submit a job"),
    h("p", { class: "muted" }, "Filled in with the paper's digits experiment: three hidden layers of 100 sigmoid units, batch norm before each sigmoid, SGD at 0.1, batches of 60, evaluated every 10 steps against a 90% target."),
  );
  if (!from) {
    root.append(buildForm({}, life));
    return;
  }
  getJson(`/v1/jobs/${from}`, { signal: life.signal })
    .then((job) => {
      root.querySelector("p.muted").textContent = `Starting from the spec of job ${job.spec.name || job.id}.`;
      root.append(buildForm(job.spec, life));
    })
    .catch((error) => life.alive && !isAbort(error) && root.append(errorBox(error)));
}
