from quart import Quart

from tests.conftest import Account, Client, bearer_headers


async def test_flow(app: Quart, user_client: Client, admin: Account) -> None:
    r = await user_client.get("/api/me")
    print(r.status_code, await r.get_json(), r.headers)
    r = await user_client.post("/api/things", json={"title": "x"})
    print(r.status_code, await r.get_json(), r.headers)
    r = await user_client.get("/api/things")
    print(r.status_code, await r.get_json(), r.headers)
    r = await user_client.get("/api/admin/users")
    print(r.status_code, await r.get_json(), r.headers)
    c = app.test_client()
    h = await bearer_headers(c, admin)
    r = await c.get("/api/admin/users", headers=h)
    print(r.status_code, await r.get_json())
    r = await c.get("/api/nope")
    print(r.status_code, await r.get_json(), r.headers)
    r = await c.delete("/api/status")
    print(r.status_code, await r.get_json(), r.headers)
    r = await user_client.post("/api/things", data="x", headers={"Content-Type": "text/plain"})
    print(r.status_code, await r.get_json())
    r = await user_client.post("/api/things", data="{x", headers={"Content-Type": "application/json"})
    print(r.status_code, await r.get_json())
    r = await user_client.post("/api/things", json={"title": "", "done": "yes", "zz": 1})
    print(r.status_code, await r.get_json())
    r = await c.get("/admin")
    print(r.status_code, r.headers)
    r = await c.get("/readyz")
    print(r.status_code, r.headers, await r.get_data())
    r = await c.get("/openapi.json")
    print(r.status_code, list((await r.get_json())["paths"]))
