// ComfyUI Model Resolver: the sidebar tab. This is the only file that registers an extension;
// the helpers next to it (cmr_*.js) only export functions.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { createModelResolver } from "./cmr_controller.js";

const resolver = createModelResolver({ app, api, win: window });
app.registerExtension(resolver.extension);
