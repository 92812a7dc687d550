"""A small SageMaker control-plane fake for what moto cannot do: hold a training job in
progress, stop it, fail it, throttle. Every request is validated against botocore's own
SageMaker service description (the model the AWS CLI and boto3 use), and a request that does not
fit it is answered 400 and recorded as a violation.

Usage: python sagemaker_fake.py PORT SCENARIO
Scenarios:
  hold     the job stays InProgress/Training until StopTrainingJob; then Stopping, Stopped
  fail     InProgress twice, then Failed with a reason
  throttle two ThrottlingException answers and one HTML 500, then InProgress, then Completed
           (the artifact is where SageMaker would put it: OUTPUT/NAME/output/model.tar.gz)
  endpoint an endpoint is Creating (or Updating) for two polls, then InService on its new
           configuration
  endpoint-fail
           as `endpoint`, but an update is rolled back after two polls: InService on the old
           configuration, with a FailureReason
  endpoint-broken
           a creation ends Failed, with a FailureReason, after two polls
  endpoint-hold
           an endpoint stays Creating or Updating
  transform
           a transform job is InProgress for two polls, then does what Batch Transform does:
           reads its input object from S3 (FAKE_S3_ENDPOINT), packs whole lines into requests
           of at most MaxPayloadInMB, posts each to the serving container (FAKE_SERVE_URL, a
           running `mlops serve`) with the job's ContentType and Accept, and writes the answers
           a line each to S3OutputPath/<input name>.out; Completed (Failed if an answer is not
           200, as SageMaker fails a job whose container refuses a request)
  transform-drop
           as `transform`, but the first answer loses its last prediction (a missing row)
  transform-fail
           a transform job fails after two polls, with a FailureReason
  transform-hold
           a transform job stays InProgress until StopTransformJob; then Stopping, Stopped
  tuning   a hyperparameter tuning job runs its trials as SageMaker does: a grid's every
           combination of the categorical values, or MaxNumberOfTrainingJobs random draws
           (RandomSeed); each trial is a training job named TUNING-NNN-XXXXXXXX whose
           hyperparameters are the static ones, the trial's and `_tuning_objective_metric`. The
           fake runs it for real: the channels downloaded from S3 (FAKE_S3_ENDPOINT) into an
           /opt/ml layout, `FAKE_MLOPS train-worker --base DIR`, the metric definitions' last
           matches in its output as the final metrics, the model directory packed to
           OUTPUT/TRIAL/output/model.tar.gz, and /opt/ml/output/failure as a failed trial's
           reason. Requests SageMaker refuses are refused: a name over 32 characters, a grid with
           a range that is not categorical, more than 30 values in one range, an objective no
           metric definition names, a hyperparameter both static and tuned.
  tuning-fail
           as `tuning`, but the second trial fails (AlgorithmError) without running
  tuning-hold
           a tuning job stays InProgress with two trials running until
           StopHyperParameterTuningJob; then Stopping, Stopped (its trials too)
GET /_calls answers {"calls": [operation, ...], "violations": [...], "tags": {arn: {key: value}}}.
"""

import hashlib
import io
import itertools
import json
import math
import os
import random
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import botocore.session
from botocore.validate import ParamValidator

MODEL = botocore.session.get_session().get_service_model("sagemaker")
SCENARIO = sys.argv[2]
CALLS = []
VIOLATIONS = []
JOBS = {}
THROTTLES = {"left": 3}
MODELS = {}
CONFIGS = {}
ENDPOINTS = {}
ARN = "arn:aws:sagemaker:us-east-1:123456789012:"
TRANSFORMS = {}
TRANSFORM_OPS = {"CreateTransformJob", "DescribeTransformJob", "StopTransformJob"}
HOSTING = {"CreateModel", "DescribeModel", "CreateEndpointConfig", "DescribeEndpointConfig",
           "CreateEndpoint", "UpdateEndpoint", "DescribeEndpoint", "AddTags"}
TAGS = {}
TUNINGS = {}
TUNING_OPS = {"CreateHyperParameterTuningJob", "DescribeHyperParameterTuningJob",
              "StopHyperParameterTuningJob", "ListTrainingJobsForHyperParameterTuningJob"}
LOCK = threading.Lock()
FAILURE = "The primary container for production variant AllTraffic did not pass the ping health check."


def endpoint_view(e):
    e["polls"] += 1
    if e["status"] in ("Creating", "Updating") and e["polls"] > 2 and SCENARIO != "endpoint-hold":
        if SCENARIO == "endpoint-fail" and e["status"] == "Updating":
            e["status"], e["reason"] = "InService", FAILURE
        elif SCENARIO == "endpoint-broken" and e["status"] == "Creating":
            e["status"], e["reason"] = "Failed", FAILURE
        else:
            e["status"], e["config"] = "InService", e["next"]
    out = {
        "EndpointName": e["name"],
        "EndpointArn": ARN + "endpoint/" + e["name"].lower(),
        "EndpointStatus": e["status"],
        "CreationTime": 1700000000,
        "LastModifiedTime": 1700000000,
    }
    if e["config"]:
        out["EndpointConfigName"] = e["config"]
    if "reason" in e:
        out["FailureReason"] = e["reason"]
    return out


def hosting(handler, op, params):
    """Answers one of the HOSTING operations."""
    if op == "CreateModel":
        name = params["ModelName"]
        if name in MODELS:
            return handler.error(400, "ValidationException", f"Cannot create already existing model {name}")
        MODELS[name] = params
        return handler.answer(200, {"ModelArn": ARN + "model/" + name.lower()})
    if op == "DescribeModel":
        name = params["ModelName"]
        if name not in MODELS:
            return handler.error(400, "ValidationException", f"Could not find model \"{name}\".")
        m = MODELS[name]
        return handler.answer(200, {
            "ModelName": name, "ModelArn": ARN + "model/" + name.lower(),
            "PrimaryContainer": m["PrimaryContainer"], "ExecutionRoleArn": m["ExecutionRoleArn"],
            "CreationTime": 1700000000,
        })
    if op == "CreateEndpointConfig":
        name = params["EndpointConfigName"]
        if name in CONFIGS:
            return handler.error(400, "ValidationException", f"Cannot create already existing endpoint configuration \"{name}\".")
        for v in params["ProductionVariants"]:
            if v["ModelName"] not in MODELS:
                return handler.error(400, "ValidationException", f"Could not find model \"{v['ModelName']}\".")
        CONFIGS[name] = params
        return handler.answer(200, {"EndpointConfigArn": ARN + "endpoint-config/" + name.lower()})
    if op == "DescribeEndpointConfig":
        name = params["EndpointConfigName"]
        if name not in CONFIGS:
            return handler.error(400, "ValidationException", f"Could not find endpoint configuration \"{name}\".")
        return handler.answer(200, {
            "EndpointConfigName": name, "EndpointConfigArn": ARN + "endpoint-config/" + name.lower(),
            "ProductionVariants": CONFIGS[name]["ProductionVariants"], "CreationTime": 1700000000,
        })
    if op in ("CreateEndpoint", "UpdateEndpoint"):
        name, config = params["EndpointName"], params["EndpointConfigName"]
        if config not in CONFIGS:
            return handler.error(400, "ValidationException", f"Could not find endpoint configuration \"{config}\".")
        if op == "CreateEndpoint":
            if name in ENDPOINTS:
                return handler.error(400, "ValidationException", f"Cannot create already existing endpoint \"{name}\".")
            ENDPOINTS[name] = {"name": name, "status": "Creating", "config": None, "next": config, "polls": 0}
        else:
            e = ENDPOINTS.get(name)
            if e is None:
                return handler.error(400, "ValidationException", f"Could not find endpoint \"{name}\".")
            if e["status"] != "InService":
                return handler.error(400, "ValidationException", f"Cannot update in-progress endpoint \"{name}\".")
            e.update({"status": "Updating", "next": config, "polls": 0})
            e.pop("reason", None)
        return handler.answer(200, {"EndpointArn": ARN + "endpoint/" + name.lower()})
    if op == "AddTags":
        TAGS.setdefault(params["ResourceArn"], {}).update({t["Key"]: t["Value"] for t in params["Tags"]})
        return handler.answer(200, {"Tags": params["Tags"]})
    if op == "DescribeEndpoint":
        e = ENDPOINTS.get(params["EndpointName"])
        if e is None:
            return handler.error(400, "ValidationException", f"Could not find endpoint \"{params['EndpointName']}\".")
        return handler.answer(200, endpoint_view(e))
    return handler.error(400, "ValidationException", f"the fake does not implement {op}")


def job_view(job):
    out = {
        "TrainingJobName": job["name"],
        "TrainingJobArn": "arn:aws:sagemaker:us-east-1:123456789012:training-job/" + job["name"],
        "TrainingJobStatus": job["status"],
        "SecondaryStatus": job["secondary"],
        "AlgorithmSpecification": job["request"]["AlgorithmSpecification"],
        "CreationTime": 1700000000,
        "SecondaryStatusTransitions": [
            {"Status": s, "StartTime": 1700000000, "StatusMessage": "now " + s}
            for s in job["seen"]
        ],
        "ResourceConfig": job["request"]["ResourceConfig"],
        "StoppingCondition": job["request"]["StoppingCondition"],
        "RoleArn": job["request"]["RoleArn"],
        "ModelArtifacts": {"S3ModelArtifacts": job["artifact"]},
    }
    if "reason" in job:
        out["FailureReason"] = job["reason"]
    if "metrics" in job:
        out["FinalMetricDataList"] = [{"MetricName": k, "Value": v, "Timestamp": 1700000000}
                                      for k, v in job["metrics"].items()]
        out["HyperParameters"] = job["request"]["HyperParameters"]
    return out


def move(job, status, secondary):
    job["status"], job["secondary"] = status, secondary
    if job["seen"][-1] != secondary:
        job["seen"].append(secondary)


def describe(job):
    job["polls"] += 1
    if SCENARIO == "hold":
        if job["status"] == "Stopping":
            move(job, "Stopped", "Stopped")
        elif job["polls"] >= 2 and job["status"] == "InProgress":
            move(job, "InProgress", "Training")
    elif SCENARIO == "fail":
        if job["polls"] > 2:
            job["reason"] = "AlgorithmError: the worker exited 2: train.csv line 3: not a number"
            move(job, "Failed", "Failed")
    elif SCENARIO == "throttle":
        if job["polls"] == 2:
            move(job, "InProgress", "Training")
        elif job["polls"] >= 3:
            move(job, "Completed", "Completed")
    return job_view(job)


def s3():
    import boto3
    return boto3.client("s3", endpoint_url=os.environ["FAKE_S3_ENDPOINT"], region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def split_s3(uri):
    bucket, _, key = uri[len("s3://"):].partition("/")
    return bucket, key


def run_transform(job):
    """Batch Transform's work, as its documentation describes it (SplitType=Line,
    BatchStrategy=MultiRecord, AssembleWith=Line): the failure reason, or None."""
    p = job["request"]
    bucket, key = split_s3(p["TransformInput"]["DataSource"]["S3DataSource"]["S3Uri"])
    lines = s3().get_object(Bucket=bucket, Key=key)["Body"].read().splitlines(keepends=True)
    limit = p.get("MaxPayloadInMB", 6) * 1024 * 1024
    batches, current = [], b""
    for line in lines:
        if len(line) > limit:
            return "ClientError: a record is larger than MaxPayloadInMB"
        if len(current) + len(line) > limit:
            batches.append(current)
            current = b""
        current += line
    if current:
        batches.append(current)
    job["requests"] = len(batches)
    answers = []
    for body in batches:
        request = urllib.request.Request(
            os.environ["FAKE_SERVE_URL"] + "/invocations", data=body, method="POST",
            headers={"Content-Type": p["TransformInput"]["ContentType"],
                     "Accept": p["TransformOutput"]["Accept"]})
        try:
            with urllib.request.urlopen(request, timeout=60) as answer:
                answers.append(answer.read().rstrip(b"\n"))
        except urllib.error.HTTPError as e:
            return f"ClientError: the container answered {e.code}: {e.read()[:200]!r}"
    if SCENARIO == "transform-drop" and answers:
        first = json.loads(answers[0])
        first["predictions"] = first["predictions"][:-1]
        answers[0] = json.dumps(first).encode()
    out_bucket, out_key = split_s3(p["TransformOutput"]["S3OutputPath"])
    name = key.rsplit("/", 1)[-1] + ".out"
    out_key = (out_key.rstrip("/") + "/" + name).lstrip("/")
    s3().put_object(Bucket=out_bucket, Key=out_key, Body=b"".join(a + b"\n" for a in answers))
    return None


def transform_view(job):
    p = job["request"]
    out = {
        "TransformJobName": p["TransformJobName"],
        "TransformJobArn": ARN + "transform-job/" + p["TransformJobName"].lower(),
        "TransformJobStatus": job["status"],
        "ModelName": p["ModelName"],
        "TransformInput": p["TransformInput"],
        "TransformOutput": p["TransformOutput"],
        "TransformResources": p["TransformResources"],
        "CreationTime": 1700000000,
    }
    if "reason" in job:
        out["FailureReason"] = job["reason"]
    return out


def transforms(handler, op, params):
    """Answers one of the TRANSFORM_OPS."""
    name = params["TransformJobName"]
    job = TRANSFORMS.get(name)
    if op == "CreateTransformJob":
        if job is not None:
            return handler.error(400, "ResourceInUse", f"Job name must be unique within an AWS account and region, and a job with this name already exists ({name})")
        if params["ModelName"] not in MODELS:
            return handler.error(400, "ValidationException", f"Could not find model \"{params['ModelName']}\".")
        TRANSFORMS[name] = {"request": params, "status": "InProgress", "polls": 0}
        return handler.answer(200, {"TransformJobArn": transform_view(TRANSFORMS[name])["TransformJobArn"]})
    if job is None:
        return handler.error(400, "ValidationException", f"Could not find job to update with name {name}")
    if op == "StopTransformJob":
        if job["status"] != "InProgress":
            return handler.error(400, "ValidationException", f"job is {job['status']}")
        job["status"] = "Stopping"
        return handler.answer(200, {})
    job["polls"] += 1
    if job["status"] == "Stopping":
        job["status"] = "Stopped"
    elif job["status"] == "InProgress" and job["polls"] > 2 and SCENARIO != "transform-hold":
        if SCENARIO == "transform-fail":
            job["status"], job["reason"] = "Failed", "AlgorithmError: the container exited 137 (out of memory)"
        else:
            reason = run_transform(job)
            if reason:
                job["status"], job["reason"] = "Failed", reason
            else:
                job["status"] = "Completed"
    return handler.answer(200, transform_view(job))


def tuning_refusal(p):
    """Why SageMaker would refuse this CreateHyperParameterTuningJob, or None."""
    name = p["HyperParameterTuningJobName"]
    if not re.fullmatch(r"[a-zA-Z0-9](-*[a-zA-Z0-9]){0,31}", name):
        return f"HyperParameterTuningJobName {name!r} must match ^[a-zA-Z0-9](-*[a-zA-Z0-9]){{0,31}}"
    config = p["HyperParameterTuningJobConfig"]
    ranges = config.get("ParameterRanges", {})
    definition = p["TrainingJobDefinition"]
    if config["Strategy"] == "Grid" and (ranges.get("ContinuousParameterRanges") or ranges.get("IntegerParameterRanges")):
        return "The Grid search strategy supports only categorical parameter ranges"
    if config["Strategy"] == "Random" and "MaxNumberOfTrainingJobs" not in config["ResourceLimits"]:
        return "MaxNumberOfTrainingJobs is required for the Random strategy"
    for r in ranges.get("CategoricalParameterRanges", []):
        if len(r["Values"]) > 30:
            return f"categorical range {r['Name']} has {len(r['Values'])} values; at most 30"
    objective = config.get("HyperParameterTuningJobObjective", {}).get("MetricName")
    names = [d["Name"] for d in definition["AlgorithmSpecification"].get("MetricDefinitions", [])]
    if objective not in names:
        return f"the objective metric {objective!r} is not one of the metric definitions {names}"
    tuned = [r["Name"] for kind in ranges.values() for r in kind]
    both = set(tuned) & set(definition.get("StaticHyperParameters", {}))
    if both:
        return f"hyperparameters {sorted(both)} are both static and tunable"
    return None


def trial_values(config):
    """The tuned hyperparameters of each trial: a grid's combinations, or seeded draws."""
    ranges = config.get("ParameterRanges", {})
    categorical = [(r["Name"], r["Values"]) for r in ranges.get("CategoricalParameterRanges", [])]
    if config["Strategy"] == "Grid":
        names = [n for n, _ in categorical]
        return [dict(zip(names, combo)) for combo in itertools.product(*[v for _, v in categorical])]
    rng = random.Random(config.get("RandomSeed", 0))
    out = []
    for _ in range(config["ResourceLimits"]["MaxNumberOfTrainingJobs"]):
        values = {n: rng.choice(v) for n, v in categorical}
        for r in ranges.get("ContinuousParameterRanges", []):
            lo, hi = float(r["MinValue"]), float(r["MaxValue"])
            if r.get("ScalingType") == "Logarithmic":
                x = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            else:
                x = rng.uniform(lo, hi)
            values[r["Name"]] = repr(x)
        out.append(values)
    return out


def run_trial(tuning, job, values):
    """One trial as a SageMaker training job runs it, for real; fills in `job`."""
    p = tuning["request"]
    definition = p["TrainingJobDefinition"]
    with tempfile.TemporaryDirectory(prefix="fake-sagemaker-") as base:
        config = os.path.join(base, "input", "config")
        os.makedirs(config)
        hp = dict(definition.get("StaticHyperParameters", {}))
        hp.update(values)
        hp["_tuning_objective_metric"] = p["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
        job["request"]["HyperParameters"] = hp
        with open(os.path.join(config, "hyperparameters.json"), "w") as f:
            json.dump(hp, f)
        for channel in definition["InputDataConfig"]:
            bucket, prefix = split_s3(channel["DataSource"]["S3DataSource"]["S3Uri"])
            target = os.path.join(base, "input", "data", channel["ChannelName"])
            os.makedirs(target)
            for obj in s3().list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", []):
                name = obj["Key"].rsplit("/", 1)[-1]
                s3().download_file(bucket, obj["Key"], os.path.join(target, name))
        for d in ("model", "output"):
            os.makedirs(os.path.join(base, d), exist_ok=True)
        job["started"] = time.time()
        run = subprocess.run([os.environ["FAKE_MLOPS"], "train-worker", "--base", base],
                             capture_output=True, text=True, timeout=600)
        job["ended"] = time.time()
        log = run.stdout + run.stderr
        if run.returncode != 0:
            failure = os.path.join(base, "output", "failure")
            reason = open(failure).read().strip() if os.path.exists(failure) else log.strip()[-300:]
            job["reason"] = "AlgorithmError: " + reason
            move(job, "Failed", "Failed")
            return
        metrics = {}
        for d in definition["AlgorithmSpecification"].get("MetricDefinitions", []):
            found = re.findall(d["Regex"], log)
            if found:
                metrics[d["Name"]] = float(found[-1])
        job["metrics"] = metrics
        packed = io.BytesIO()
        with tarfile.open(fileobj=packed, mode="w:gz") as tar:
            tar.add(os.path.join(base, "model"), arcname=".")
        bucket, key = split_s3(job["artifact"])
        s3().put_object(Bucket=bucket, Key=key, Body=packed.getvalue())
        move(job, "Completed", "Completed")


def tuning_trials(tuning):
    """Starts the trials (the tuning job's thread): created in order, run one at a time."""
    p = tuning["request"]
    name = p["HyperParameterTuningJobName"]
    definition = p["TrainingJobDefinition"]
    output = definition["OutputDataConfig"]["S3OutputPath"].rstrip("/")
    for i, values in enumerate(trial_values(p["HyperParameterTuningJobConfig"]), start=1):
        with LOCK:
            if tuning["status"] != "InProgress":
                return
            suffix = hashlib.sha256(f"{name}/{i}".encode()).hexdigest()[:8]
            trial = f"{name}-{i:03d}-{suffix}"
            request = {
                "AlgorithmSpecification": definition["AlgorithmSpecification"],
                "ResourceConfig": definition["ResourceConfig"],
                "StoppingCondition": definition["StoppingCondition"],
                "RoleArn": definition["RoleArn"],
                "HyperParameters": {},
            }
            JOBS[trial] = {"name": trial, "request": request, "status": "InProgress",
                           "secondary": "Starting", "seen": ["Starting"], "polls": 0,
                           "artifact": f"{output}/{trial}/output/model.tar.gz",
                           "tuned": values, "created": 1700000000 + i}
            tuning["trials"].append(trial)
        job = JOBS[trial]
        if SCENARIO == "tuning-hold":
            continue
        if SCENARIO == "tuning-fail" and i == 2:
            job["reason"] = "AlgorithmError: the fake fails the second trial"
            move(job, "Failed", "Failed")
            continue
        try:
            run_trial(tuning, job, values)
        except Exception as e:  # the fake's own trouble shows as the trial's failure
            job["reason"] = f"InternalServerError: {e}"
            move(job, "Failed", "Failed")
    with LOCK:
        if SCENARIO != "tuning-hold" and tuning["status"] == "InProgress":
            tuning["status"] = "Completed"


def trial_summary(tuning, trial):
    job = JOBS[trial]
    objective = tuning["request"]["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]["MetricName"]
    out = {
        "TrainingJobName": trial,
        "TrainingJobArn": ARN + "training-job/" + trial.lower(),
        "TuningJobName": tuning["request"]["HyperParameterTuningJobName"],
        "CreationTime": job["created"],
        "TrainingJobStatus": job["status"],
        "TunedHyperParameters": job["tuned"],
    }
    if "started" in job:
        out["TrainingStartTime"] = job["started"]
    if "ended" in job:
        out["TrainingEndTime"] = job["ended"]
    if "reason" in job:
        out["FailureReason"] = job["reason"]
    if objective in job.get("metrics", {}):
        out["FinalHyperParameterTuningJobObjectiveMetric"] = {"MetricName": objective, "Value": job["metrics"][objective]}
        out["ObjectiveStatus"] = "Succeeded"
    return out


def tuning_view(tuning):
    p = tuning["request"]
    jobs = [JOBS[t] for t in tuning["trials"]]
    count = lambda status: sum(1 for j in jobs if j["status"] == status)
    out = {
        "HyperParameterTuningJobName": p["HyperParameterTuningJobName"],
        "HyperParameterTuningJobArn": ARN + "hyper-parameter-tuning-job/" + p["HyperParameterTuningJobName"].lower(),
        "HyperParameterTuningJobConfig": p["HyperParameterTuningJobConfig"],
        "TrainingJobDefinition": p["TrainingJobDefinition"],
        "HyperParameterTuningJobStatus": tuning["status"],
        "CreationTime": 1700000000,
        "TrainingJobStatusCounters": {"Completed": count("Completed"), "InProgress": count("InProgress"),
                                      "RetryableError": 0, "NonRetryableError": count("Failed"),
                                      "Stopped": count("Stopped")},
        "ObjectiveStatusCounters": {"Succeeded": count("Completed"), "Pending": count("InProgress"),
                                    "Failed": count("Failed")},
    }
    config = p["HyperParameterTuningJobConfig"]["HyperParameterTuningJobObjective"]
    scored = [t for t in tuning["trials"] if config["MetricName"] in JOBS[t].get("metrics", {})]
    if scored:
        pick = max if config["Type"] == "Maximize" else min
        best = pick(scored, key=lambda t: JOBS[t]["metrics"][config["MetricName"]])
        out["BestTrainingJob"] = trial_summary(tuning, best)
    return out


def tunings(handler, op, params):
    """Answers one of the TUNING_OPS."""
    name = params["HyperParameterTuningJobName"]
    tuning = TUNINGS.get(name)
    if op == "CreateHyperParameterTuningJob":
        if tuning is not None:
            return handler.error(400, "ResourceInUse", f"Hyperparameter tuning job {name} already exists")
        refusal = tuning_refusal(params)
        if refusal:
            VIOLATIONS.append(f"{op}: {refusal}")
            return handler.error(400, "ValidationException", refusal)
        tuning = TUNINGS[name] = {"request": params, "status": "InProgress", "trials": [], "polls": 0}
        arn = ARN + "hyper-parameter-tuning-job/" + name.lower()
        TAGS.setdefault(arn, {}).update({t["Key"]: t["Value"] for t in params.get("Tags", [])})
        threading.Thread(target=tuning_trials, args=(tuning,), daemon=True).start()
        return handler.answer(200, {"HyperParameterTuningJobArn": arn})
    if tuning is None:
        return handler.error(400, "ResourceNotFound", f"Amazon SageMaker can't find a tuning job with name {name}")
    with LOCK:
        if op == "StopHyperParameterTuningJob":
            if tuning["status"] != "InProgress":
                return handler.error(400, "ValidationException", f"tuning job is {tuning['status']}")
            tuning["status"] = "Stopping"
            for t in tuning["trials"]:
                if JOBS[t]["status"] == "InProgress":
                    move(JOBS[t], "Stopping", "Stopping")
            return handler.answer(200, {})
        if op == "DescribeHyperParameterTuningJob":
            tuning["polls"] += 1
            if tuning["status"] == "Stopping" and tuning["polls"] > 1:
                tuning["status"] = "Stopped"
                for t in tuning["trials"]:
                    if JOBS[t]["status"] == "Stopping":
                        move(JOBS[t], "Stopped", "Stopped")
            return handler.answer(200, tuning_view(tuning))
        # ListTrainingJobsForHyperParameterTuningJob, sorted and paged as SageMaker does.
        trials = sorted(tuning["trials"], key=lambda t: JOBS[t]["created"],
                        reverse=params.get("SortOrder", "Descending") == "Descending")
        start = int(params.get("NextToken") or 0)
        size = params.get("MaxResults", 10)
        page = trials[start:start + size]
        out = {"TrainingJobSummaries": [trial_summary(tuning, t) for t in page]}
        if start + size < len(trials):
            out["NextToken"] = str(start + size)
        return handler.answer(200, out)


class Handler(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def answer(self, status, body, content_type="application/x-amz-json-1.1"):
        data = body.encode() if isinstance(body, str) else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def error(self, status, code, message):
        self.answer(status, {"__type": code, "message": message})

    def do_GET(self):
        with LOCK:
            state = {"calls": CALLS, "violations": VIOLATIONS, "tags": TAGS, "models": MODELS,
                     "transforms": TRANSFORMS, "tunings": TUNINGS,
                     "trials": {n: j for n, j in JOBS.items() if "tuned" in j}}
            body = json.dumps(state)
        self.answer(200, body, "application/json")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        params = json.loads(self.rfile.read(length) or b"{}")
        target = self.headers.get("X-Amz-Target", "")
        op = target.split(".", 1)[-1]
        CALLS.append(op)
        if op not in MODEL.operation_names:
            VIOLATIONS.append(f"{op}: no such operation")
            return self.error(400, "UnknownOperationException", op)
        report = ParamValidator().validate(params, MODEL.operation_model(op).input_shape)
        if report.has_errors():
            VIOLATIONS.append(f"{op}: {report.generate_report()}")
            return self.error(400, "ValidationException", report.generate_report())
        if op in HOSTING:
            return hosting(self, op, params)
        if op in TRANSFORM_OPS:
            return transforms(self, op, params)
        if op in TUNING_OPS:
            return tunings(self, op, params)
        name = params.get("TrainingJobName", "")
        if op == "CreateTrainingJob":
            if name in JOBS:
                return self.error(400, "ResourceInUse", f"Training job {name} already exists")
            output = params["OutputDataConfig"]["S3OutputPath"].rstrip("/")
            JOBS[name] = {
                "name": name,
                "request": params,
                "status": "InProgress",
                "secondary": "Starting",
                "seen": ["Starting"],
                "polls": 0,
                "artifact": f"{output}/{name}/output/model.tar.gz",
            }
            return self.answer(200, {"TrainingJobArn": job_view(JOBS[name])["TrainingJobArn"]})
        if op == "DescribeTrainingJob":
            if name not in JOBS:
                return self.error(400, "ValidationException", "Requested resource not found.")
            if "tuned" in JOBS[name]:
                with LOCK:
                    return self.answer(200, job_view(JOBS[name]))
            if SCENARIO == "throttle" and JOBS[name]["polls"] >= 1 and THROTTLES["left"] > 0:
                THROTTLES["left"] -= 1
                if THROTTLES["left"] == 0:
                    return self.answer(500, "<html>Internal Server Error</html>", "text/html")
                return self.error(400, "ThrottlingException", "Rate exceeded")
            return self.answer(200, describe(JOBS[name]))
        if op == "StopTrainingJob":
            job = JOBS.get(name)
            if job is None:
                return self.error(400, "ValidationException", "Requested resource not found.")
            if job["status"] != "InProgress":
                return self.error(400, "ValidationException", f"job is {job['status']}")
            move(job, "Stopping", "Stopping")
            return self.answer(200, {})
        return self.error(400, "ValidationException", f"the fake does not implement {op}")


ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), Handler).serve_forever()
