// oxid: runs the WebAuthn ceremony whose options the page carries (<script id="passkey-options">)
// and posts the authenticator's answer with the page's passkey form (its `credential` field).
// Without WebAuthn in the browser the passkey form stays hidden and the page works as before.
"use strict";
(function () {
  const data = document.getElementById("passkey-options");
  const form = document.getElementById("passkey-form");
  const PKC = window.PublicKeyCredential;
  if (!data || !form || !PKC || !PKC.parseRequestOptionsFromJSON) {
    return;
  }
  form.hidden = false;
  const options = JSON.parse(data.textContent);
  const answer = form.querySelector("input[name=credential]");
  const problem = document.getElementById("passkey-problem");
  const registering = form.dataset.ceremony === "register";
  let pending = null;

  function ask(mediation) {
    if (pending) {
      pending.abort();
    }
    pending = new AbortController();
    const signal = pending.signal;
    const asked = registering
      ? navigator.credentials.create({ publicKey: PKC.parseCreationOptionsFromJSON(options), signal })
      : navigator.credentials.get({ publicKey: PKC.parseRequestOptionsFromJSON(options), mediation, signal });
    asked.then(
      (credential) => {
        if (credential) {
          answer.value = JSON.stringify(credential.toJSON());
          form.submit();
        }
      },
      (error) => {
        // A conditional request is aborted when the user presses the button instead.
        if (error.name !== "AbortError" && problem) {
          problem.hidden = false;
        }
      },
    );
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    ask("optional");
  });
  // Sign-in: also offer the passkeys the browser knows in the username field's autofill.
  if (form.dataset.ceremony === "sign-in" && PKC.isConditionalMediationAvailable) {
    PKC.isConditionalMediationAvailable().then((available) => {
      if (available) {
        ask("conditional");
      }
    });
  }
})();
