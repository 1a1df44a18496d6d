// Settings of the page when it is hosted on its own (Cloudflare Pages, any
// static host). `otpd serve` answers /config.js itself with its own values.
window.OTPD_CONFIG = {
  // Where the API is: "" for the same origin, or e.g. "https://otp.example.com".
  // Also add that origin to connect-src in _headers, and this page's origin
  // to the API's OTPD_ALLOWED_ORIGINS.
  apiBase: "",
  productName: "otpd",
  codeLength: 6,
};
