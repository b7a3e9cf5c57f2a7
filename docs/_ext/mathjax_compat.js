// Inlined by Sphinx (mathjax_config_path) before MathJax 3 loads, on pages with maths.
// The ipywidgets renderer (@jupyter-widgets/html-manager 1.x) typesets widget labels with the MathJax 2 API,
// MathJax.Hub.Queue(["Typeset", MathJax.Hub, element]), which MathJax 3 lacks: it would throw a TypeError on
// every page that has both maths and widgets. This maps that call onto MathJax 3's typesetPromise.
(function () {
  var pending = [];
  var hub = {
    Queue: function (job) {
      var el = Array.isArray(job) ? job[2] : undefined;
      var mj = window.MathJax;
      if (mj && typeof mj.typesetPromise === "function") {
        mj.typesetPromise(el ? [el] : undefined).catch(function (err) { console.warn("MathJax:", err); });
      } else {
        pending.push(el);
      }
    },
  };
  var config = (window.MathJax = window.MathJax || {});
  config.Hub = hub; // until MathJax 3 replaces the global with itself
  config.startup = config.startup || {};
  var ready = config.startup.ready;
  config.startup.ready = function () {
    (ready || window.MathJax.startup.defaultReady)();
    window.MathJax.Hub = hub;
    pending.splice(0).forEach(function (el) { hub.Queue(["Typeset", null, el]); });
  };
})();
