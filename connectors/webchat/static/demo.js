// The demo shop's "Get help" button opens the chat widget (a file: the page's CSP allows no
// inline script).
document.getElementById('open-chat').addEventListener('click', function () {
  if (window.BrightlineChat) window.BrightlineChat.open();
});
