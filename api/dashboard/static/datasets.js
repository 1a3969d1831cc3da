// Uploaded datasets (`#/datasets`): upload an NPZ or CSV file under a name, see what each holds (sizes, an
// example's shape, classes, SHA-256), delete one after a confirmation. Specs train on one with
// "dataset": "user:<name>".

import { getJson, request } from "./api.js";
import { errorBox, formatNumber, formatTime, h, isAbort } from "./dom.js";

export function datasetsPage(root, query, life) {
  const messages = h("div", { class: "messages" });
  const body = h("tbody");
  const nameInput = h("input", { type: "text", id: "dataset-name", placeholder: "name", pattern: "[a-z0-9][a-z0-9_.\\-]{0,63}", required: true });
  const fileInput = h("input", { type: "file", id: "dataset-file", accept: ".npz,.csv", required: true });
  const uploadButton = h("button", { type: "submit", id: "upload-dataset", class: "primary" }, "Upload");
  const form = h("form", { class: "filters", id: "dataset-form" },
    h("label", {}, "Name ", nameInput), h("label", {}, "File (NPZ with x, y, or CSV with a label column) ", fileInput), uploadButton);

  async function refresh() {
    const page = await getJson("/v1/datasets", { signal: life.signal });
    body.replaceChildren(...page.items.map((dataset) => {
      const remove = h("button", { type: "button", class: "danger", "data-delete": dataset.name }, "Delete");
      remove.addEventListener("click", async () => {
        if (!confirm(`Delete dataset ${dataset.name}? Jobs that trained on it keep their results.`)) return;
        try {
          await request(`/v1/datasets/${dataset.name}`, { method: "DELETE", signal: life.signal });
          await refresh();
        } catch (error) {
          if (!isAbort(error)) messages.replaceChildren(errorBox(error));
        }
      });
      return h("tr", { "data-dataset": dataset.name },
        h("td", {}, h("code", {}, `user:${dataset.name}`)),
        h("td", { class: "number" }, formatNumber(dataset.train_size, 0)),
        h("td", { class: "number" }, formatNumber(dataset.val_size, 0)),
        h("td", {}, dataset.input_shape.join("×")),
        h("td", { class: "number" }, String(dataset.num_classes)),
        h("td", { class: "id" }, dataset.sha256.slice(0, 12)),
        h("td", {}, formatTime(dataset.created_at)),
        h("td", {}, remove));
    }));
    if (!page.items.length) body.append(h("tr", {}, h("td", { colspan: 8, class: "muted" }, "No datasets yet.")));
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const data = new FormData();
    data.append("name", nameInput.value.trim());
    data.append("file", fileInput.files[0]);
    uploadButton.disabled = true;
    try {
      await request("/v1/datasets", { method: "POST", body: data, signal: life.signal });
      messages.replaceChildren();
      form.reset();
      await refresh();
    } catch (error) {
      if (!isAbort(error)) messages.replaceChildren(errorBox(error));
    } finally {
      uploadButton.disabled = false;
    }
  });

  root.append(
    h("h1", {}, "Datasets"),
    h("p", { class: "muted" }, 'Your own data: a spec trains on one with "dataset": "user:<name>" (alone or in fused sweeps).'),
    form,
    messages,
    h("table", { class: "datasets", id: "datasets-table" },
      h("thead", {}, h("tr", {}, ["Dataset", "Train", "Validation", "Example shape", "Classes", "SHA-256", "Uploaded", ""].map((title) => h("th", {}, title)))),
      body),
  );
  refresh().catch((error) => life.alive && !isAbort(error) && messages.replaceChildren(errorBox(error)));
}
