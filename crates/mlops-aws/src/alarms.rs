//! CloudWatch alarms: the state of the ones a watch after a deploy reads (the manifest's
//! `rollback_alarms` and the ones the rendered Terraform creates for an endpoint).

use aws_config::BehaviorVersion;

use crate::AwsError;
use crate::call::explain;

/// CloudWatch from the default configuration chain.
#[derive(Debug, Clone)]
pub struct Alarms {
    client: aws_sdk_cloudwatch::Client,
}

/// One alarm's state as CloudWatch reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AlarmState {
    pub name: String,
    /// `OK`, `ALARM` or `INSUFFICIENT_DATA`.
    pub state: String,
    /// CloudWatch's reason for the state.
    pub reason: String,
}

impl Alarms {
    pub async fn from_env() -> Self {
        let config = aws_config::defaults(BehaviorVersion::latest()).load().await;
        Self {
            client: aws_sdk_cloudwatch::Client::new(&config),
        }
    }

    /// The states of the metric alarms named `names` that exist (in the order CloudWatch lists
    /// them; a name that does not exist is absent from the answer).
    pub async fn states(&self, names: &[String]) -> Result<Vec<AlarmState>, AwsError> {
        let mut out = Vec::new();
        // DescribeAlarms takes at most 100 names per call.
        for chunk in names.chunks(100) {
            let mut token: Option<String> = None;
            loop {
                let answer = self
                    .client
                    .describe_alarms()
                    .set_alarm_names(Some(chunk.to_vec()))
                    .set_next_token(token.clone())
                    .send()
                    .await
                    .map_err(|e| {
                        explain("CloudWatch", &chunk.join(", "), "describe the alarms", &e)
                    })?;
                for a in answer.metric_alarms() {
                    out.push(AlarmState {
                        name: a.alarm_name().unwrap_or_default().to_owned(),
                        state: a
                            .state_value()
                            .map(|s| s.as_str().to_owned())
                            .unwrap_or_default(),
                        reason: a.state_reason().unwrap_or_default().to_owned(),
                    });
                }
                token = answer.next_token().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
        }
        Ok(out)
    }
}
