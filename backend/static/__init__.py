"""What runview serves to browsers: the playground's page template (``playground.html``) and
the GraphiQL build it loads (``graphiql/``, vendored from npm by ``refresh.py``).

Everything here ships inside the wheel, so the playground works with no internet.
"""
