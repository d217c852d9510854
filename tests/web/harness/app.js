// Stand-in for ComfyUI's /scripts/app.js shim: an extension manager, a small litegraph-like graph.
const widget = (name, value) => ({ name, value, callback() {} });
function node(id, type, widgets, extra = {}) { return { id, type, mode: 0, properties: {}, widgets, ...extra }; }

function makeGraph() {
  const loader = node(5, "CheckpointLoaderSimple", [widget("ckpt_name", "SD1.5\\dream.safetensors")]);
  const sub = { nodes: [loader] };
  sub.getNodeById = (id) => sub.nodes.find((n) => n.id === Number(id)) ?? null;
  const graph = {
    nodes: [
      node(1, "VAELoader", [widget("vae_name", "vae.safetensors")]),
      node(2, "sg-1", [widget("ckpt_name", "SD1.5\\dream.safetensors")], { subgraph: sub }),
      node(3, "LoraLoader", [widget("lora_name", "detail.safetensors"), widget("strength_model", 1)]),
      node(4, "UpscaleModelLoader", [widget("model_name", "4x.pth")]),
      // a node whose pack is not installed: LiteGraph keeps its saved data and shows no widgets
      node(6, "ExoticLoader", undefined, { has_errors: true,
        last_serialization: { id: 6, type: "ExoticLoader", widgets_values: ["exotic.safetensors"] } }),
      node(7, "CLIPLoader", [widget("clip_name", "t5xxl.safetensors"), widget("type", "flux")]),
    ],
    subgraphs: new Map([["sg-1", sub]]),
    dirty: 0,
    setDirtyCanvas() { this.dirty++; },
    getNodeById(id) { return this.nodes.find((n) => n.id === Number(id)) ?? null; },
    serialize() {
      const ser = (n) => n.last_serialization ?? ({ id: n.id, type: n.type, mode: n.mode, properties: n.properties,
        widgets_values: n.widgets.map((w) => w.value) });
      return { nodes: this.nodes.map(ser), links: [], version: 0.4,
        definitions: { subgraphs: [{ id: "sg-1", nodes: sub.nodes.map(ser) }] } };
    },
  };
  return graph;
}

const tabs = [];
const toasts = [];
const workflowStore = { activeWorkflow: { key: "wf-a.json", path: "workflows/wf-a.json", filename: "wf-a",
  changeTracker: { checks: 0, checkState() { this.checks++; } } } };
export const app = {
  graph: makeGraph(),
  extensions: [],
  comboRefreshes: 0,
  async refreshComboInNodes() { this.comboRefreshes++; },
  extensionManager: {
    // the newer store API (preferred by the extension) and the old one, over the same list
    sidebarTab: { used: false, sidebarTabs: tabs, registerSidebarTab(tab) { this.used = true; tabs.push(tab); },
      activeSidebarTabId: null, toggled: [], toggleSidebarTab(id) { this.toggled.push(id); this.activeSidebarTabId = id; } },
    registerSidebarTab(tab) { tabs.push(tab); },
    getSidebarTabs() { return tabs; },
    toast: { add(t) { toasts.push(t); } },
    workflow: workflowStore,
  },
  async registerExtension(ext) {
    this.extensions.push(ext);
    await ext.setup?.(this);
  },
  toasts,
};
window.fakeApp = app;
