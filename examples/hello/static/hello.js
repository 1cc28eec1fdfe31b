// Served by gatehouse as a static file: fetches /api/hello through the app
// route and shows what the app learned about the client.
document.addEventListener("DOMContentLoaded", async () => {
  const out = document.getElementById("who");
  try {
    const res = await fetch("/api/hello");
    const data = await res.json();
    out.textContent = `the app sees you as ${data.client_ip} over ${data.proto}, request ${data.request_id}`;
    out.className = "ok";
  } catch (e) {
    out.textContent = "could not reach /api/hello: " + e;
  }
});
