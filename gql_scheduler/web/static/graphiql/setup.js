// gql-scheduler's GraphiQL page. A served file, not an inline script: the page's
// Content-Security-Policy allows scripts from this server only.
//
// Queries and mutations go over HTTP with the headers set in GraphiQL's headers editor
// (GraphiQL's own fetcher adds them). A websocket has no headers of its own, so
// subscriptions send the Authorization header in the connection_init payload instead,
// as the server reads it there; a websocket client is made for each Authorization value
// and the previous one closed, so that a changed key takes effect on the next operation.
(function () {
  "use strict";

  var httpUrl = window.location.origin + window.location.pathname;
  var wsUrl = httpUrl.replace(/^http/, "ws");
  var current = null;

  function authorizationOf(headers) {
    var names = Object.keys(headers || {});
    for (var i = 0; i < names.length; i++) {
      if (names[i].toLowerCase() === "authorization") {
        return String(headers[names[i]]);
      }
    }
    return null;
  }

  function fetcherFor(authorization) {
    if (current !== null && current.authorization === authorization) {
      return current.fetcher;
    }
    if (current !== null) {
      current.client.dispose();
    }
    var client = graphqlWs.createClient({
      url: wsUrl,
      connectionParams: authorization === null ? {} : { Authorization: authorization },
    });
    current = {
      authorization: authorization,
      client: client,
      fetcher: GraphiQL.createFetcher({ url: httpUrl, wsClient: client }),
    };
    return current.fetcher;
  }

  // GraphiQL parses the editor 100 ms after each change, and its fetcher picks the
  // websocket for a subscription by that parse: run sooner after an edit, and a new
  // subscription would go over HTTP. The document is parsed from what is run instead.
  function withCurrentDocument(graphQLParams, options) {
    try {
      var documentAST = GraphiQL.GraphQL.parse(graphQLParams.query);
      return Object.assign({}, options, { documentAST: documentAST });
    } catch (error) {
      return options; // not a document: the server reports the syntax error
    }
  }

  function fetcher(graphQLParams, options) {
    var headers = options ? options.headers : undefined;
    var runOptions = withCurrentDocument(graphQLParams, options);
    return fetcherFor(authorizationOf(headers))(graphQLParams, runOptions);
  }

  var root = ReactDOM.createRoot(document.getElementById("graphiql"));
  root.render(
    React.createElement(GraphiQL, {
      fetcher: fetcher,
      isHeadersEditorEnabled: true,
      defaultEditorToolsVisibility: true,
      // An API key typed into the headers editor stays out of localStorage.
      shouldPersistHeaders: false,
    })
  );
})();
