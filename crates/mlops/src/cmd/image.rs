//! `mlops image push`: the arguments to a [`mlops_core::image::Request`], the image by digest
//! out (a line, or JSON), and the step outputs in Actions.

use mlops_actions::Runtime;
use mlops_aws::Image;

use crate::cli::{Format, ImagePushArgs};
use crate::exit::Exit;

pub(crate) fn push(args: &ImagePushArgs, format: Format) -> Exit {
    let (m, _) = match super::valid_manifest(&args.manifest, format, "no image built") {
        Ok(m) => m,
        Err(code) => return code,
    };
    let request = mlops_core::image::Request {
        manifest: &m,
        manifest_path: &args.manifest,
        binary: args.binary.clone(),
        docker: &args.docker,
    };
    let image = match mlops_core::image::push(&request, &mut super::Console(format)) {
        Ok(image) => image,
        Err(p) => return super::failed(&p),
    };
    if format == Format::Json {
        println!(
            "{}",
            serde_json::json!({
                "image": image.uri,
                "digest": image.digest,
                "tag": image.tag,
                "repository": image.repository,
            })
        );
    } else {
        println!("image {}", image.uri);
    }
    if let Err(e) = outputs(&image) {
        eprintln!("warning: could not write the step outputs: {e}");
    }
    Exit::Ok
}

fn outputs(image: &Image) -> std::io::Result<()> {
    let rt = Runtime::from_env();
    if !rt.is_actions() {
        return Ok(());
    }
    rt.set_output("image", &image.uri)?;
    rt.set_output("digest", &image.digest)?;
    rt.set_output("tag", image.tag.as_deref().unwrap_or_default())
}
