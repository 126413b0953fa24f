"""A researcher's client written from schemas/ alone (no Ferry code): publishes a job request and a bad one, and
reads the job updates from its own results queue. Usage: schema_client.py AMQP_URL SCHEMAS_DIR [WAIT_SECS]

It waits for both updates up to WAIT_SECS (default 600): the wait ends as soon as they are in."""

import json
import sys
import time
import uuid

import pika

url, schemas = sys.argv[1], sys.argv[2]
wait_secs = float(sys.argv[3]) if len(sys.argv) > 3 else 600.0
schema = json.load(open(f"{schemas}/job-request.schema.json"))
update_schema = json.load(open(f"{schemas}/job-update.schema.json"))
user = pika.URLParameters(url).credentials.username

# What the schema's description says: exchange, routing key, properties.
assert '"ferry.requests"' in schema["description"] and 'routing key "job"' in schema["description"]
request = {
    "job_id": str(uuid.uuid4()),
    "title": "from pika",
    "description": "a client built from the schema",
    "runtime": schema["properties"]["runtime"]["default"],
    "code": "print(open('inputs/training-data.csv').read().count('\\n'))",
    "assets": ["training-data.csv"],
}
assert set(schema["required"]) <= set(request) and set(request) <= set(schema["properties"])

conn = pika.BlockingConnection(pika.URLParameters(url))
ch = conn.channel()
ch.confirm_delivery()
ch.basic_publish(
    "ferry.requests", "job", json.dumps(request).encode(),
    pika.BasicProperties(content_type="application/json", user_id=user, message_id=request["job_id"], delivery_mode=2),
)
print("submitted", request["job_id"])
bad = dict(request, job_id=str(uuid.uuid4()), assets=["no-such-asset"])
ch.basic_publish(
    "ferry.requests", "job", json.dumps(bad).encode(),
    pika.BasicProperties(content_type="application/json", user_id=user, message_id=bad["job_id"], delivery_mode=2),
)

seen = set()
deadline = time.time() + wait_secs
while time.time() < deadline and len(seen) < 2:
    method, props, body = ch.basic_get(f"ferry.results.{user}", auto_ack=True)
    if method is None:
        time.sleep(0.2)
        continue
    update = json.loads(body)
    assert set(update_schema["required"]) <= set(update), update
    assert update["state"] in update_schema["properties"]["state"]["enum"], update
    if update["job_id"] == request["job_id"]:
        print("update", update["state"])
        seen.add("good")
    elif update["job_id"] == bad["job_id"]:
        print("refused:", update["reason"])
        seen.add("bad")
conn.close()
sys.exit(0 if len(seen) == 2 else 1)
