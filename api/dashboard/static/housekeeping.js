// Looking after past work from the dashboard: a job's or sweep's tags shown as badges, and the actions on
// its page — edit tags, archive (or bring back), delete after a confirmation.

import { request } from "./api.js";
import { errorBox, h, isAbort } from "./dom.js";

/** The tags of a job or sweep as small badges, and "archived" when it is. */
export function tagBadges(item) {
  const badges = (item.tags ?? []).map((tag) => h("span", { class: "tag" }, tag));
  if (item.archived) badges.push(h("span", { class: "tag archived" }, "archived"));
  return h("span", { class: "tags" }, badges);
}

/**
 * Tag editor, archive and delete buttons for `/v1/{kind}s/{item.id}` (`kind`: "job" or "sweep").
 * `onChange(item)` gets the item after a change; `afterDelete()` runs once it is gone.
 */
export function housekeepingActions(kind, item, { messages, signal, onChange, afterDelete }) {
  const path = `/v1/${kind}s/${item.id}`;
  const tagsInput = h("input", {
    type: "text",
    id: `${kind}-tags`,
    value: (item.tags ?? []).join(" "),
    placeholder: "tags, space separated",
    "aria-label": `tags of this ${kind}`,
  });
  const saveTags = h("button", { type: "button", id: `save-${kind}-tags` }, "Save tags");
  const archiveButton = h("button", { type: "button", id: `archive-${kind}` });
  const deleteButton = h("button", { type: "button", id: `delete-${kind}`, class: "danger" }, "Delete");
  const showArchived = () => (archiveButton.textContent = item.archived ? "Unarchive" : "Archive");
  showArchived();

  const patch = async (changes) => {
    try {
      item = await (await request(path, { method: "PATCH", json: changes, signal })).json();
      messages.replaceChildren();
      showArchived();
      onChange(item);
    } catch (error) {
      if (!isAbort(error)) messages.replaceChildren(errorBox(error));
    }
  };
  saveTags.addEventListener("click", () => patch({ tags: tagsInput.value.split(/[\s,]+/).filter(Boolean) }));
  archiveButton.addEventListener("click", () => patch({ archived: !item.archived }));
  deleteButton.addEventListener("click", async () => {
    const what = kind === "sweep" ? "this sweep, all its jobs" : "this job";
    if (!confirm(`Delete ${what} and everything recorded of it? A running job is cancelled first. This cannot be undone.`)) return;
    deleteButton.disabled = true;
    deleteButton.textContent = "Deleting…";
    try {
      await request(path, { method: "DELETE", signal });
      afterDelete();
    } catch (error) {
      if (!isAbort(error)) messages.replaceChildren(errorBox(error));
      deleteButton.disabled = false;
      deleteButton.textContent = "Delete";
    }
  });
  return h("div", { class: "housekeeping" }, tagsInput, saveTags, archiveButton, deleteButton);
}
