// runview's GraphiQL page (inlined by backend/playground.py, which allows exactly this script
// through the page's Content-Security-Policy by its hash). The server's data for the page,
// the default query, comes in the JSON block #playground-config: never built into this code.
"use strict";

(function () {
  var config = JSON.parse(document.getElementById("playground-config").textContent);

  // Sharing as Strawberry's page does: ?q= is the editor's query, ?variables= its variables.
  // (?query= would make the server run the query instead of serving this page.) Headers
  // never go into the URL: they may carry an API key.
  var parameters = {};
  new URLSearchParams(window.location.search).forEach(function (value, key) {
    parameters[key] = value;
  });

  function updateURL(changes) {
    Object.assign(parameters, changes);
    var search = new URLSearchParams();
    Object.keys(parameters).forEach(function (key) {
      if (parameters[key]) search.set(key, parameters[key]);
    });
    var text = search.toString();
    history.replaceState(null, "", text ? "?" + text : window.location.pathname);
  }

  var url = window.location.href.split("?")[0].split("#")[0];
  var subscriptionUrl = new URL(url);
  subscriptionUrl.protocol = subscriptionUrl.protocol === "https:" ? "wss:" : "ws:";

  // Headers typed in the headers editor (an Authorization: Bearer key, say) are merged into
  // every request by the fetcher, and kept in this browser's storage between visits.
  var fetcher = GraphiQL.createFetcher({ url: url, subscriptionUrl: subscriptionUrl.toString() });
  var explorer = GraphiQLPluginExplorer.explorerPlugin();

  function Playground() {
    var query = React.useState(parameters.q || config.defaultQuery);
    var variables = React.useState(parameters.variables);
    return React.createElement(GraphiQL, {
      fetcher: fetcher,
      plugins: [explorer],
      query: query[0],
      variables: variables[0],
      onEditQuery: function (text) {
        query[1](text);
        // GraphiQL reports the default query as an edit as it opens: leaving it out of the
        // URL keeps a reload on the newest flow run.
        updateURL({ q: text === config.defaultQuery ? "" : text });
      },
      onEditVariables: function (text) {
        variables[1](text);
        updateURL({ variables: text });
      },
      defaultEditorToolsVisibility: true,
      isHeadersEditorEnabled: true,
      shouldPersistHeaders: true,
      inputValueDeprecation: true,
    });
  }

  ReactDOM.createRoot(document.getElementById("graphiql")).render(
    React.createElement(Playground),
  );
})();
