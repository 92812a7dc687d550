//! `model.json`, the model bundle: what a trained network needs besides its weights
//! (`model.safetensors`) to be rebuilt and fed exactly as training fed it: its architecture, its
//! signature (the feature columns in order, the label, the classes) and the standardizer fitted
//! on the training split.

use mlops_manifest::model::{Activation, Family, Hyperparameters, ImageShape};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::training::Signature;

/// The `$id` of the bundle's JSON Schema (`schema/model-bundle.schema.json`).
pub const SCHEMA_ID: &str = "https://mlops-rs.github.io/schema/v1/model-bundle.schema.json";

/// What `model.json` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Bundle {
    pub architecture: Architecture,
    pub signature: Signature,
    pub standardizer: Standardizer,
}

impl Bundle {
    /// A bundle from `model.json`'s bytes; the error says what is wrong, for a message that
    /// names the file.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, String> {
        let bundle: Self = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        let sig = &bundle.signature;
        let features = sig.inputs();
        let a = &bundle.architecture;
        let s = &bundle.standardizer;
        if a.inputs != features || s.mean.len() != features || s.std.len() != features {
            return Err(format!(
                "{features} inputs from the feature columns, but the network takes {} inputs and \
                 the standardizer has {} means and {} deviations",
                a.inputs,
                s.mean.len(),
                s.std.len()
            ));
        }
        if let Some(c) = sig.categorical.iter().find(|c| {
            !sig.features.contains(&c.column)
                || c.values.is_empty()
                || c.values
                    .iter()
                    .collect::<std::collections::HashSet<_>>()
                    .len()
                    != c.values.len()
        }) {
            return Err(format!(
                "categorical feature `{}` is not a feature column, has no categories or lists one \
                 twice",
                c.column
            ));
        }
        if sig
            .categorical
            .iter()
            .map(|c| &c.column)
            .collect::<std::collections::HashSet<_>>()
            .len()
            != sig.categorical.len()
        {
            return Err("a categorical feature is listed twice".into());
        }
        if s.std.iter().any(|d| !d.is_finite() || *d <= 0.0)
            || s.mean.iter().any(|m| !m.is_finite())
        {
            return Err(
                "the standardizer holds a non-finite mean or a deviation that is not positive"
                    .into(),
            );
        }
        Ok(bundle)
    }
}

/// Everything needed to rebuild the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Architecture {
    pub family: Family,
    /// Input features (for a CNN, `height * width` pixels in row-major order).
    pub inputs: usize,
    /// Classes, or 1 for regression.
    pub outputs: usize,
    pub hidden_layers: Vec<usize>,
    pub activation: Activation,
    pub dropout: f64,
    /// CNN only: `[height, width]`, the channels of each convolution and the kernel size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<[usize; 2]>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conv_channels: Vec<usize>,
    #[serde(default)]
    pub kernel_size: usize,
}

impl Architecture {
    /// An ONNX model's: its input and output widths, no layers of mlops'.
    pub fn onnx(inputs: usize, outputs: usize) -> Self {
        Self {
            family: Family::Onnx,
            inputs,
            outputs,
            hidden_layers: Vec::new(),
            activation: Hyperparameters::default().activation,
            dropout: 0.0,
            image: None,
            conv_channels: Vec::new(),
            kernel_size: 0,
        }
    }

    /// The network the manifest's model settings describe, for `inputs` features and `outputs`
    /// classes (1 for regression). A CNN without explicit settings gets 16 and 32 channels of
    /// 3x3 kernels.
    pub fn new(
        family: Family,
        inputs: usize,
        outputs: usize,
        hp: &Hyperparameters,
        image: Option<ImageShape>,
    ) -> Self {
        let cnn = family == Family::Cnn;
        let channels = hp.conv_channels.clone().unwrap_or_else(|| vec![16, 32]);
        Self {
            family,
            inputs,
            outputs,
            hidden_layers: hp.hidden_layers.iter().map(|&h| h as usize).collect(),
            activation: hp.activation,
            dropout: hp.dropout,
            image: image
                .filter(|_| cnn)
                .map(|s| [s.height as usize, s.width as usize]),
            conv_channels: match cnn {
                true => channels.into_iter().map(|c| c as usize).collect(),
                false => Vec::new(),
            },
            kernel_size: if cnn {
                hp.kernel_size.unwrap_or(3) as usize
            } else {
                0
            },
        }
    }

    /// Whether each convolution is followed by a 2x2 max-pool (while the image still has 2x2
    /// pixels to pool), and the width of the flattened convolution output.
    pub fn conv_output(&self) -> (usize, Vec<bool>) {
        let [mut h, mut w] = self.image.unwrap_or([1, 1]);
        let mut pools = Vec::new();
        for _ in &self.conv_channels {
            let pool = h >= 2 && w >= 2;
            if pool {
                h /= 2;
                w /= 2;
            }
            pools.push(pool);
        }
        let channels = self.conv_channels.last().copied().unwrap_or(1);
        (channels * h * w, pools)
    }

    /// Number of trainable parameters (0 for an ONNX model: its graph's own, which the training
    /// report counts from the file).
    pub fn parameters(&self) -> usize {
        if self.family == Family::Onnx {
            return 0;
        }
        let mut total = 0;
        let mut channels_in = 1;
        for &c in &self.conv_channels {
            total += channels_in * c * self.kernel_size * self.kernel_size + c;
            channels_in = c;
        }
        let mut width = match self.family {
            Family::Mlp | Family::Onnx => self.inputs,
            Family::Cnn => self.conv_output().0,
        };
        for &h in &self.hidden_layers {
            total += width * h + h;
            width = h;
        }
        total + width * self.outputs + self.outputs
    }
}

/// Per-feature mean and standard deviation of the training split: what serving must apply to
/// every input, exactly as training did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Standardizer {
    pub mean: Vec<f32>,
    /// 1.0 where a feature is constant in training (it then only loses its mean).
    pub std: Vec<f32>,
    /// The value a missing feature takes before it is standardised (`data.missing`: the
    /// training split's mean or median, or zero); absent when the model takes no gaps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fill: Option<Vec<f32>>,
}

impl Standardizer {
    /// One row standardised in place: the one transform training, serving and the holdout
    /// test's offline predictions share. A gap (NaN) takes the recorded fill value first.
    pub fn apply_row(&self, row: &mut [f32]) {
        if let Some(fill) = &self.fill {
            for (v, f) in row.iter_mut().zip(fill) {
                if v.is_nan() {
                    *v = *f;
                }
            }
        }
        for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.std) {
            *v = (*v - m) / s;
        }
    }

    /// Whether the model takes missing feature values (and fills them).
    pub fn takes_gaps(&self) -> bool {
        self.fill.is_some()
    }
}

/// The bundle's JSON Schema, as `schema/model-bundle.schema.json` holds it.
pub fn schema_text() -> String {
    crate::schema_text::<Bundle>(SCHEMA_ID, "mlops model bundle (model.json)")
}

#[cfg(test)]
mod tests {
    use mlops_manifest::model::Task;

    use super::*;

    fn bundle() -> Bundle {
        let hp = Hyperparameters::default();
        Bundle {
            architecture: Architecture::new(Family::Mlp, 2, 3, &hp, None),
            signature: Signature::numeric(
                vec!["a".into(), "b".into()],
                "y".into(),
                Task::Classification,
                Some(vec!["x".into(), "y".into(), "z".into()]),
            ),
            standardizer: Standardizer {
                mean: vec![1.0, -2.0],
                std: vec![2.0, 1.0],
                fill: None,
            },
        }
    }

    /// A bundle round-trips; one whose parts disagree on the feature count, or whose
    /// standardizer would divide by zero, or with a field no version wrote, is refused.
    #[test]
    fn a_bundle_reads_back_and_inconsistent_ones_are_refused() {
        let b = bundle();
        let text = serde_json::to_vec(&b).expect("serialises");
        assert_eq!(Bundle::from_slice(&text), Ok(b.clone()));
        let mut row = [3.0, -2.0];
        b.standardizer.apply_row(&mut row);
        assert_eq!(row, [1.0, 0.0]);

        let mut short = b.clone();
        short.standardizer.mean.pop();
        let e = Bundle::from_slice(&serde_json::to_vec(&short).expect("json")).expect_err("short");
        assert!(
            e.contains("2 inputs from the feature columns") && e.contains("1 means"),
            "{e}"
        );
        // A categorical feature widens the inputs: `b` as three categories.
        let mut categorical = b.clone();
        categorical.signature.categorical = vec![crate::training::Categories {
            column: "b".into(),
            values: vec!["p".into(), "q".into(), "r".into()],
        }];
        assert_eq!(categorical.signature.inputs(), 4);
        let e = Bundle::from_slice(&serde_json::to_vec(&categorical).expect("json"))
            .expect_err("narrow network");
        assert!(e.contains("4 inputs"), "{e}");
        categorical.architecture.inputs = 4;
        categorical.standardizer.mean = vec![0.0; 4];
        categorical.standardizer.std = vec![1.0; 4];
        let text = serde_json::to_vec(&categorical).expect("json");
        assert_eq!(Bundle::from_slice(&text), Ok(categorical.clone()));
        categorical.signature.categorical[0].values[2] = "p".into();
        let e = Bundle::from_slice(&serde_json::to_vec(&categorical).expect("json"))
            .expect_err("twice");
        assert!(e.contains("lists one twice"), "{e}");
        let mut zero = b.clone();
        zero.standardizer.std[1] = 0.0;
        let e = Bundle::from_slice(&serde_json::to_vec(&zero).expect("json")).expect_err("zero");
        assert!(e.contains("not positive"), "{e}");
        let mut extra = serde_json::to_value(&b).expect("json");
        extra["standardiser"] = serde_json::json!({});
        let e = Bundle::from_slice(extra.to_string().as_bytes()).expect_err("unknown field");
        assert!(e.contains("unknown field `standardiser`"), "{e}");
    }

    #[test]
    fn a_cnn_pools_while_the_image_allows_and_counts_its_parameters() {
        let hp = Hyperparameters::default();
        let shape = ImageShape {
            height: 8,
            width: 8,
        };
        let mut cnn = Architecture::new(Family::Cnn, 64, 10, &hp, Some(shape));
        assert_eq!(
            (cnn.conv_channels.clone(), cnn.kernel_size),
            (vec![16, 32], 3)
        );
        cnn.conv_channels = vec![8, 16, 4, 4];
        // 8x8 -> 4x4 -> 2x2 -> 1x1, then no more pooling: 4 channels of 1x1.
        assert_eq!(cnn.conv_output(), (4, vec![true, true, true, false]));
        let mlp = Architecture::new(Family::Mlp, 64, 10, &hp, Some(shape));
        assert_eq!((mlp.image, mlp.kernel_size), (None, 0));
        assert_eq!(mlp.parameters(), 64 * 64 + 64 + 64 * 10 + 10);
    }
}
