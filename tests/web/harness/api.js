// Stand-in for ComfyUI's /scripts/api.js shim: fetchApi answered from a route table, events by hand.
class FakeApi extends EventTarget {
  constructor() {
    super();
    this.calls = [];
    this.handlers = new Map(); // "METHOD /path" (no query) -> (body, query) => [status, json]
  }
  on(method, path, fn) { this.handlers.set(`${method} ${path}`, fn); }
  async fetchApi(route, options = {}) {
    const method = (options.method || "GET").toUpperCase();
    const url = new URL(route, "http://comfy.local/api");
    const body = options.body ? JSON.parse(options.body) : undefined;
    this.calls.push({ method, path: url.pathname, query: Object.fromEntries(url.searchParams), body,
      contentType: options.headers?.["Content-Type"] ?? null });
    let fn = this.handlers.get(`${method} ${url.pathname}`);
    if (!fn) for (const [k, f] of this.handlers) { // "/cmr/v1/downloads/*" style patterns
      const [m, p] = k.split(" ");
      if (m === method && p.endsWith("*") && url.pathname.startsWith(p.slice(0, -1))) fn = f;
    }
    const [status, json] = fn ? await fn(body, Object.fromEntries(url.searchParams), url.pathname) : [404, null];
    return new Response(json === null ? "" : JSON.stringify(json), { status, headers: { "Content-Type": "application/json" } });
  }
  emit(type, detail) { this.dispatchEvent(new CustomEvent(type, { detail })); }
}
export const api = new FakeApi();
window.fakeApi = api;
