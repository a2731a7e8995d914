// The model picker: the allowlisted models from the server, the one last chosen (remembered in this
// browser), and the Reasoning switch, shown only for the models that can reason.

export class ModelPicker {
  constructor(select, reasoningBox, reasoningToggle) {
    this.select = select;
    this.reasoningBox = reasoningBox;
    this.reasoningToggle = reasoningToggle;
    this.models = new Map();
    this.historyLimit = Infinity; // how many stored messages a reply's context takes
    select.addEventListener("change", () => this.changed());
    reasoningBox.addEventListener("change", () => {
      localStorage.setItem("streaming.reasoning", reasoningBox.checked);
    });
  }

  async load(api) {
    const data = await api.models();
    const saved = localStorage.getItem("streaming.model");
    for (const model of data.models) {
      this.models.set(model.id, model);
      this.select.add(new Option(model.label, model.id));
    }
    this.select.value = this.models.has(saved) ? saved : (data.default ?? data.models[0]?.id ?? "");
    this.reasoningBox.checked = localStorage.getItem("streaming.reasoning") === "true";
    this.historyLimit = data.history_messages ?? Infinity;
    this.changed(false);
  }

  /** Choose `modelId` (a conversation's own), if it is still offered. */
  choose(modelId) {
    if (!this.models.has(modelId)) return;
    this.select.value = modelId;
    this.changed();
  }

  changed(save = true) {
    this.reasoningToggle.hidden = !this.models.get(this.select.value)?.reasoning;
    if (save) localStorage.setItem("streaming.model", this.select.value);
  }

  labelOf(modelId) {
    return this.models.get(modelId)?.label ?? modelId ?? "";
  }

  /** The model and reasoning options of a chat request. */
  options() {
    const model = this.select.value;
    return { model, reasoning: Boolean(this.models.get(model)?.reasoning && this.reasoningBox.checked) };
  }
}
