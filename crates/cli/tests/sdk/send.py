"""Sends every call type through an official SDK, unchanged, pointed at Rapport.

usage: send.py segment|rudderstack URL WRITE_KEY RUN_ID [gzip]
Exits non-zero if the SDK reported any delivery error.
"""
import sys

which, url, key, run = sys.argv[1:5]
use_gzip = len(sys.argv) > 5 and sys.argv[5] == "gzip"
errors = []


def on_error(error, batch):
    errors.append(repr(error))


if which == "segment":
    import segment.analytics as analytics

    analytics.host = url
else:
    import rudderstack.analytics as analytics

    analytics.dataPlaneUrl = url
analytics.write_key = key
analytics.on_error = on_error
analytics.gzip = use_gzip
analytics.max_retries = 1

user = f"{run}-user"
analytics.track(anonymous_id=f"{run}-anon", event="Viewed Pricing", properties={"plan": "pro"},
                context={"traits": {"email": f"{run}@example.com"}})
analytics.identify(user_id=user, anonymous_id=f"{run}-anon",
                   traits={"email": f"{run}@example.com", "name": "SDK Person", "twitter": f"@sdk_{run}",
                           "phone": "+14155552671" if which == "segment" else "+442079460958"})
analytics.track(user_id=user, event="Order Completed", properties={"revenue": 42.5, "review": "Great stuff!"})
analytics.page(user_id=user, category="Docs", name="Getting started", properties={"url": "https://example.com/docs"})
analytics.screen(user_id=user, category="App", name="Home")
analytics.group(user_id=user, group_id=f"{run}-acme", traits={"name": "Acme"})
analytics.alias(previous_id=user, user_id=f"{run}-new-id")
analytics.flush()
analytics.shutdown()
if errors:
    print("\n".join(errors))
    sys.exit(1)
print("sent")
