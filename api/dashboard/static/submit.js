// The submit form (`#/submit`, or `#/submit?from=<id>` to start from a job's spec). The API is the one
// validator: the form sends what was typed (numbers as numbers, anything else as typed) and shows each
// 422 error next to the field it names.

import { ApiError, getJson, postJson } from "./api.js";
import { errorBox, h, isAbort } from "./dom.js";

const DEFAULT_SPEC = {
  name: "",
  architecture: { kind: "mlp", hidden: [100, 100, 100], channels: [16, 32], activation: "sigmoid" },
  batch_norm: true,
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
      { name: "batch_norm", label: "Batch normalization", kind: "checkbox", help: "a BN layer before every hidden nonlinearity" },
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
      { name: "telemetry_every", label: "Telemetry every", kind: "number", help: "steps; 0 = off (the Fig. 1 percentiles)" },
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
      { name: "checkpoint_every", label: "Checkpoint every", kind: "number", help: "steps; 0 = never" },
    ],
  },
];
const FIELDS = GROUPS.flatMap((group) => group.fields);

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
    { class: `field field-${field.kind}`, "data-field": field.name, "data-when": field.when ?? null },
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
    if (field.name.startsWith("architecture.")) continue;
    const input = value(field.name);
    if (field.kind === "checkbox") spec[field.name] = input.checked;
    else if (field.kind === "number") spec[field.name] = parseNumber(input.value);
    else if (field.kind === "optional-number") spec[field.name] = input.value.trim() === "" ? null : parseNumber(input.value);
    else spec[field.name] = input.value;
  }
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
  if (parts[0] !== "architecture") return { name: String(parts[0] ?? ""), index: parts[1] };
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
  };
  form.elements["architecture.kind"].addEventListener("change", showLayersOfKind);
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
