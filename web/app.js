// The otpd page: ask for a code, type it back. Plain JavaScript, no
// dependencies, no third-party requests. Settings come from config.js.
"use strict";

(function () {
  const config = Object.assign(
    { apiBase: "", productName: "otpd", codeLength: 6 },
    window.OTPD_CONFIG || {}
  );
  const api = config.apiBase.replace(/\/+$/, "");
  const $ = (id) => document.getElementById(id);

  const steps = { email: $("step-email"), code: $("step-code"), done: $("step-done") };
  const emailInput = $("email");
  const codeInput = $("code");
  const sendButton = $("send");
  const verifyButton = $("verify");
  const resendButton = $("resend");
  const status = $("status");

  let address = "";
  let resendTimer = null;
  let blockTimer = null;
  let busy = false;

  document.title = "Verify your email — " + config.productName;
  $("product").textContent = config.productName;

  function show(step) {
    for (const [name, section] of Object.entries(steps)) section.hidden = name !== step;
    const heading = steps[step].querySelector("h1");
    if (step === "email") emailInput.focus();
    else if (step === "code") codeInput.focus();
    else heading.focus();
  }

  function say(text) {
    status.textContent = text;
  }

  function fieldError(id, text) {
    const el = $(id);
    el.textContent = text || "";
    el.hidden = !text;
    const input = id === "email-error" ? emailInput : codeInput;
    if (text) input.setAttribute("aria-invalid", "true");
    else input.removeAttribute("aria-invalid");
  }

  function plural(n, word) {
    return n + " " + word + (n === 1 ? "" : "s");
  }

  function describeSeconds(s) {
    if (s >= 120 && s % 60 === 0) return plural(s / 60, "minute");
    if (s >= 60) return plural(Math.ceil(s / 60), "minute");
    return plural(s, "second");
  }

  async function post(path, body) {
    let response;
    try {
      response = await fetch(api + path, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(body),
      });
    } catch (e) {
      return { network: true };
    }
    let data = {};
    try {
      data = await response.json();
    } catch (e) {
      data = {};
    }
    return { status: response.status, data, retryAfter: retryAfter(response, data) };
  }

  function retryAfter(response, data) {
    const fromBody = Number(data && data.retry_after);
    if (Number.isFinite(fromBody) && fromBody > 0) return Math.ceil(fromBody);
    const fromHeader = Number(response.headers.get("Retry-After"));
    return Number.isFinite(fromHeader) && fromHeader > 0 ? Math.ceil(fromHeader) : 0;
  }

  function setBusy(button, on, label) {
    busy = on;
    button.disabled = on;
    button.setAttribute("aria-busy", on ? "true" : "false");
    if (label) button.textContent = label;
  }

  // Counts `seconds` down on `button`, then restores `label`.
  function countdown(button, seconds, label, format, onDone) {
    let left = seconds;
    button.disabled = true;
    const tick = () => {
      if (left <= 0) {
        clearInterval(timer);
        button.disabled = false;
        button.textContent = label;
        if (onDone) onDone();
        return;
      }
      button.textContent = format(left);
      left -= 1;
    };
    const timer = setInterval(tick, 1000);
    tick();
    return timer;
  }

  function startResendCountdown(seconds) {
    clearInterval(resendTimer);
    resendTimer = countdown(resendButton, seconds, "Send a new code", (s) => "Send a new code in " + s + " s");
  }

  function blockFor(button, label, seconds) {
    clearInterval(blockTimer);
    blockTimer = countdown(button, seconds, label, (s) => "Try again in " + s + " s");
  }

  function unexpected(result, fieldId) {
    if (result.network) {
      fieldError(fieldId, "Could not reach the verification service. Check your connection and try again.");
    } else if (result.status === 413 || result.status === 415 || result.status === 400) {
      fieldError(fieldId, (result.data && result.data.message) || "The request was not accepted.");
    } else {
      fieldError(fieldId, "Something went wrong on our side. Please try again in a moment.");
    }
  }

  async function requestCode(fromResend) {
    if (busy) return;
    const typed = emailInput.value.trim();
    if (!typed) {
      fieldError("email-error", "Enter your email address.");
      emailInput.focus();
      return;
    }
    fieldError("email-error", "");
    fieldError("code-error", "");
    const button = fromResend ? resendButton : sendButton;
    const label = fromResend ? "Send a new code" : "Send code";
    setBusy(button, true, "Sending…");
    say("Sending a code…");
    const result = await post("/GenerateOTP", { email: typed });
    setBusy(button, false, label);
    say("");
    if (result.status === 200) {
      address = result.data.email;
      $("sent-to").textContent = address;
      $("expires-in").textContent = describeSeconds(result.data.expires_in);
      codeInput.value = "";
      show("code");
      say((fromResend ? "A new code was sent to " : "A code was sent to ") + address + ".");
      startResendCountdown(result.data.resend_after || 0);
      return;
    }
    const target = fromResend ? "code-error" : "email-error";
    if (result.status === 429) {
      const wait = result.retryAfter || 60;
      fieldError(target, "Too many requests. You can ask for a new code in " + describeSeconds(wait) + ".");
      if (fromResend) startResendCountdown(wait);
      else blockFor(sendButton, "Send code", wait);
    } else if (result.status === 403) {
      fieldError(target, "Addresses at this domain cannot be verified here. Use your work or organisation address.");
    } else if (result.status === 400 && result.data.error === "invalid_email") {
      if (fromResend) show("email");
      fieldError("email-error", "That does not look like an email address. Check it and try again.");
      emailInput.focus();
    } else {
      unexpected(result, target);
    }
  }

  async function verifyCode() {
    if (busy) return;
    const digits = codeInput.value.replace(/\D/g, "");
    if (digits.length !== config.codeLength) {
      fieldError("code-error", "Enter the " + config.codeLength + "-digit code from the email.");
      codeInput.focus();
      return;
    }
    fieldError("code-error", "");
    setBusy(verifyButton, true, "Checking…");
    say("Checking the code…");
    const result = await post("/VerifyOTP", { email: address, otp: digits });
    setBusy(verifyButton, false, "Verify");
    say("");
    if (result.status === 200) {
      clearInterval(resendTimer);
      $("verified-email").textContent = result.data.email;
      show("done");
      say("Your email address is verified.");
      return;
    }
    codeInput.select();
    if (result.status === 401) {
      const left = result.data.attempts_remaining;
      fieldError(
        "code-error",
        left > 0
          ? "That code is not right. " + plural(left, "attempt") + " left."
          : "That code is not right, and there are no attempts left. Send a new code."
      );
    } else if (result.status === 410) {
      fieldError("code-error", "This code has expired or was already used. Send a new code.");
    } else if (result.status === 429) {
      const wait = result.retryAfter || 60;
      fieldError("code-error", "Too many attempts. Try again in " + describeSeconds(wait) + ".");
      blockFor(verifyButton, "Verify", wait);
    } else {
      unexpected(result, "code-error");
    }
  }

  $("form-email").addEventListener("submit", (event) => {
    event.preventDefault();
    requestCode(false);
  });

  $("form-code").addEventListener("submit", (event) => {
    event.preventDefault();
    verifyCode();
  });

  // Pasted codes may carry spaces or dashes; keep the digits and submit as
  // soon as a whole code is in.
  codeInput.addEventListener("input", () => {
    const digits = codeInput.value.replace(/\D/g, "").slice(0, config.codeLength);
    if (digits !== codeInput.value) codeInput.value = digits;
    if (digits.length === config.codeLength) verifyCode();
  });

  resendButton.addEventListener("click", () => requestCode(true));

  $("change").addEventListener("click", () => {
    clearInterval(resendTimer);
    fieldError("code-error", "");
    show("email");
    emailInput.select();
  });

  $("again").addEventListener("click", () => {
    emailInput.value = "";
    show("email");
  });

  show("email");
})();
