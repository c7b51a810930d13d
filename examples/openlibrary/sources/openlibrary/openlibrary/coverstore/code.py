"""Serves /b/id/NNN-S.jpg style cover URLs from the cover items on archive.org."""

import web

urls = (
    "/", "index",
    "/([^ /]*)/(id|olid|isbn|oclc|lccn)/([^/]*)-([SML]).jpg", "cover",
)
app = web.application(urls, locals())


class index:
    def GET(self):
        return "Open Library cover store"
