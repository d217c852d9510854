// Model Resolver sidebar: its style sheet. Colours come from the ComfyUI/PrimeVue theme variables;
// PrimeVue classes are used where ComfyUI ships their styles, with zero-specificity fallbacks (`:where`)
// so the theme always wins. Nothing runs on import.
export const STYLE_ID = "cmr-model-resolver-style";

export const CSS = `
.cmr-panel { display: flex; flex-direction: column; gap: 0.5rem; height: 100%; overflow-y: auto; padding: 0 0.75rem 1rem;
  color: var(--p-text-color, var(--input-text, #ddd)); font-size: 0.875rem; box-sizing: border-box; }
.cmr-header { display: flex; align-items: center; justify-content: space-between; gap: 0.5rem; padding: 0.75rem 0 0.25rem;
  position: sticky; top: 0; background: var(--p-content-background, var(--comfy-menu-bg, #202020)); z-index: 1; }
.cmr-title { font-weight: 700; margin: 0; font-size: 1rem; line-height: 1.25; min-width: 0; overflow-wrap: anywhere; }
.cmr-toolbar { display: flex; gap: 0.25rem; flex-wrap: nowrap; align-items: center; flex-shrink: 0; }
.cmr-actions { display: flex; gap: 0.375rem; flex-wrap: wrap; align-items: center; }
.cmr-summary { color: var(--p-text-muted-color, var(--descrip-text, #999)); margin: 0; }
.cmr-group { border-top: 1px solid var(--p-content-border-color, var(--border-color, #444)); padding-top: 0.5rem; }
.cmr-group > h3 { font-size: 0.8rem; margin: 0 0 0.375rem; display: flex; align-items: center; gap: 0.375rem; font-weight: 600; }
.cmr-list { list-style: none; margin: 0; padding: 0; display: flex; flex-direction: column; gap: 0.375rem; }
.cmr-item { border: 1px solid var(--p-content-border-color, var(--border-color, #444)); border-radius: 6px; padding: 0.5rem;
  background: var(--p-content-background, var(--comfy-menu-bg, #202020)); display: flex; flex-direction: column; gap: 0.3rem; }
.cmr-item.cmr-inactive { opacity: 0.7; }
.cmr-name { font-weight: 600; overflow-wrap: anywhere; line-height: 1.3; }
.cmr-wfname { overflow-wrap: anywhere; }
.cmr-path { font-family: var(--font-mono, ui-monospace, monospace); font-size: 0.75rem; overflow-wrap: anywhere; word-break: normal; }
.cmr-banner { border: 1px solid var(--p-orange-500, #c2410c); border-radius: 6px; padding: 0.5rem 0.6rem; display: flex; gap: 0.5rem;
  align-items: flex-start; background: color-mix(in srgb, var(--p-orange-500, #c2410c) 12%, transparent); }
.cmr-why { font-size: 0.75rem; color: var(--p-text-muted-color, var(--descrip-text, #aaa)); flex-basis: 100%; }
.cmr-item.cmr-focus { outline: 2px solid var(--p-primary-color, #3b82f6); outline-offset: 1px; }
/* A sensible minimum width for the sidebar panel while this tab is shown (ComfyUI's default is ~200 px at 1280). */
.side-bar-panel:has(.cmr-panel), .sidebar-content-container:has(.cmr-panel), .p-splitterpanel:has(> * .cmr-panel) { min-width: 340px; }
.cmr-meta, .cmr-muted { color: var(--p-text-muted-color, var(--descrip-text, #999)); font-size: 0.75rem; word-break: break-word; }
.cmr-candidate { border-left: 3px solid var(--p-primary-color, #3b82f6); padding-left: 0.5rem; display: flex; flex-direction: column; gap: 0.15rem; }
.cmr-candidate.cmr-alt { border-left-color: var(--p-content-border-color, var(--border-color, #555)); }
.cmr-reasons { margin: 0; padding-left: 1rem; color: var(--p-text-muted-color, var(--descrip-text, #999)); font-size: 0.75rem; }
.cmr-error { color: var(--p-red-400, var(--error-text, #f87171)); font-size: 0.8rem; }
.cmr-warn { color: var(--p-orange-400, #fb923c); font-size: 0.8rem; }
.cmr-ok { color: var(--p-green-400, #4ade80); }
.cmr-hint { font-size: 0.75rem; color: var(--p-text-muted-color, var(--descrip-text, #aaa)); }
.cmr-settings { display: flex; flex-direction: column; gap: 0.5rem; padding: 0.5rem; border-radius: 6px;
  border: 1px solid var(--p-content-border-color, var(--border-color, #444)); }
.cmr-settings label { display: flex; flex-direction: column; gap: 0.2rem; font-size: 0.8rem; }
.cmr-visually-hidden { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; }
:where(.cmr-panel) .cmr-input { padding: 0.35rem 0.5rem; border-radius: 4px; font: inherit;
  border: 1px solid var(--p-inputtext-border-color, var(--border-color, #555));
  background: var(--p-inputtext-background, var(--comfy-input-bg, #111)); color: var(--p-inputtext-color, var(--input-text, #ddd)); }
:where(.cmr-panel) .cmr-btn { display: inline-flex; align-items: center; gap: 0.3rem; cursor: pointer; font: inherit; font-size: 0.8rem;
  padding: 0.3rem 0.6rem; border-radius: 6px; border: 1px solid var(--p-button-primary-border-color, var(--p-primary-color, #3b82f6));
  background: var(--p-button-primary-background, var(--p-primary-color, #3b82f6)); color: var(--p-button-primary-color, #fff); }
:where(.cmr-panel) .cmr-btn.p-button-secondary, :where(.cmr-panel) .cmr-btn.p-button-text {
  background: var(--p-button-secondary-background, transparent); color: var(--p-text-color, var(--input-text, #ddd));
  border-color: var(--p-content-border-color, var(--border-color, #555)); }
:where(.cmr-panel) .cmr-btn:disabled { opacity: 0.5; cursor: default; }
.cmr-btn:focus-visible, .cmr-input:focus-visible { outline: 2px solid var(--p-focus-ring-color, var(--p-primary-color, #3b82f6)); outline-offset: 1px; }
:where(.cmr-panel) .cmr-progress { position: relative; height: 0.9rem; border-radius: 4px; overflow: hidden;
  background: var(--p-progressbar-background, var(--comfy-input-bg, #333)); }
:where(.cmr-panel) .cmr-progress .p-progressbar-value { height: 100%; background: var(--p-progressbar-value-background, var(--p-primary-color, #3b82f6)); transition: width 0.2s; }
.cmr-progress.cmr-indeterminate .p-progressbar-value { width: 30% !important; animation: cmr-slide 1.2s infinite linear; }
@keyframes cmr-slide { from { margin-left: -30%; } to { margin-left: 100%; } }
:where(.cmr-panel) .cmr-tag { display: inline-block; padding: 0.05rem 0.4rem; border-radius: 4px; font-size: 0.7rem; font-weight: 600;
  background: var(--p-content-hover-background, var(--comfy-input-bg, #333)); color: var(--p-text-color, var(--input-text, #ddd)); }
.cmr-tag.cmr-tag-missing { background: var(--p-red-500, #b91c1c); color: #fff; }
.cmr-tag.cmr-tag-relocated { background: var(--p-orange-500, #c2410c); color: #fff; }
.cmr-tag.cmr-tag-present { background: var(--p-green-600, #15803d); color: #fff; }
.cmr-tag.cmr-tag-pickle, .cmr-tag.cmr-tag-unavailable, .cmr-tag.cmr-tag-misplaced { background: var(--p-orange-600, #9a3412); color: #fff; }
.cmr-empty { color: var(--p-text-muted-color, var(--descrip-text, #999)); font-style: italic; }
`;

