"""A stand-in for the docker CLI, for `mlops image push` on machines without a container engine.

It does what the docker commands mlops runs do, as far as the test can see them:
- `build --platform P --provenance=false --sbom=false --tag NAME DIR` keeps a copy of the build
  context under the image's name (it must hold `Dockerfile` and an executable `mlops`);
- `run --rm --network none --platform P NAME ARGS...` runs the image's ENTRYPOINT (read from the
  kept Dockerfile) with the kept binary in place of `/usr/local/bin/mlops`, and ARGS;
- `login --username U --password-stdin REGISTRY` reads the password from stdin and stores it in
  `$DOCKER_CONFIG/config.json`, as docker does;
- `push NAME` needs a login for NAME's registry in `$DOCKER_CONFIG` and puts an image manifest
  (its one layer the SHA-256 of the context) into ECR with PutImage, through boto3 against
  `AWS_ENDPOINT_URL` (the moto server).

Every call is appended to `$STANDIN_LOG` as one JSON line: the arguments, `DOCKER_CONFIG`, and
for a login the password it read. `STANDIN_RUN_STDERR` makes `run` fail with that message;
`STANDIN_MEDIA_TYPE` is the pushed manifest's media type (Docker's v2 by default).
"""

import base64
import hashlib
import json
import os
import shutil
import subprocess
import sys

import boto3

DOCKER_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def state(name):
    root = os.environ["STANDIN_STATE"]
    return os.path.join(root, hashlib.sha256(name.encode()).hexdigest())


def log(entry):
    with open(os.environ["STANDIN_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\n")


def option(args, flag):
    return args[args.index(flag) + 1]


def build(args):
    name = option(args, "--tag")
    context = args[-1]
    for flag in ("--platform", "--provenance=false", "--sbom=false"):
        if flag not in args:
            sys.exit(f"stand-in docker: build without {flag}")
    binary = os.path.join(context, "mlops")
    if not os.path.isfile(os.path.join(context, "Dockerfile")):
        sys.exit("stand-in docker: no Dockerfile in the context")
    if not os.access(binary, os.X_OK):
        sys.exit("stand-in docker: the context's mlops is not executable")
    shutil.rmtree(state(name), ignore_errors=True)  # a rebuild replaces the name
    shutil.copytree(context, state(name))
    print(f"built {name}", file=sys.stderr)


def run(args):
    if os.environ.get("STANDIN_RUN_STDERR"):
        print(os.environ["STANDIN_RUN_STDERR"], file=sys.stderr)
        sys.exit(1)
    i = args.index("--platform") + 2
    name, rest = args[i], args[i + 1 :]
    kept = state(name)
    entrypoint = None
    with open(os.path.join(kept, "Dockerfile")) as f:
        for line in f:
            if line.startswith("ENTRYPOINT "):
                entrypoint = json.loads(line[len("ENTRYPOINT ") :])
    if not entrypoint or entrypoint[0] != "/usr/local/bin/mlops":
        sys.exit(f"stand-in docker: unexpected ENTRYPOINT {entrypoint}")
    command = [os.path.join(kept, "mlops")] + entrypoint[1:] + rest
    sys.exit(subprocess.run(command, stdin=subprocess.DEVNULL).returncode)


def login(args):
    registry = args[-1]
    password = sys.stdin.read()
    config = os.environ.get("DOCKER_CONFIG")
    if not config:
        sys.exit("stand-in docker: login without DOCKER_CONFIG would write ~/.docker")
    user = option(args, "--username")
    auth = base64.b64encode(f"{user}:{password}".encode()).decode()
    with open(os.path.join(config, "config.json"), "w") as f:
        json.dump({"auths": {registry: {"auth": auth}}}, f)
    return password


def push(args):
    name = args[-1]
    registry, rest = name.split("/", 1)
    repository, tag = rest.rsplit(":", 1)
    config = os.path.join(os.environ.get("DOCKER_CONFIG", "/nonexistent"), "config.json")
    try:
        with open(config) as f:
            auths = json.load(f)["auths"]
    except (OSError, KeyError, ValueError):
        sys.exit(f"stand-in docker: push without a login ({config})")
    if registry not in auths:
        sys.exit(f"stand-in docker: not logged in to {registry}")
    layer = hashlib.sha256()
    kept = state(name)
    for file in sorted(os.listdir(kept)):
        with open(os.path.join(kept, file), "rb") as f:
            layer.update(f.read())
    media_type = os.environ.get("STANDIN_MEDIA_TYPE", DOCKER_V2)
    manifest = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "layers": [{"digest": "sha256:" + layer.hexdigest()}],
    }
    region = registry.split(".")[3]  # ACCOUNT.dkr.ecr.REGION.amazonaws.com
    ecr = boto3.client(
        "ecr", endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=region
    )
    ecr.put_image(
        repositoryName=repository, imageTag=tag, imageManifest=json.dumps(manifest)
    )
    print(f"pushed {name}", file=sys.stderr)


def main():
    args = sys.argv[1:]
    entry = {"args": args, "docker_config": os.environ.get("DOCKER_CONFIG")}
    command = args[0] if args else ""
    if command == "build":
        build(args)
    elif command == "run":
        log(entry)
        run(args)
    elif command == "login":
        entry["password"] = login(args)
    elif command == "push":
        push(args)
    else:
        sys.exit(f"stand-in docker: `{command}` is not a command mlops runs")
    log(entry)


main()
