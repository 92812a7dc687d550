//! `mlops predict`: the arguments to a [`mlops_core::predict::Request`], then what was scored
//! (a line, or the JSON result). Exit 0 scored, 2 bad input (a row the model cannot read, an
//! existing output), 3 a service (S3) or the output's disk failed.

use mlops_batch::Options;

use crate::cli::{Format, PredictArgs};
use crate::exit::Exit;

pub(crate) fn run(args: &PredictArgs, format: Format) -> Exit {
    let registry = match super::registry(&args.registry, format) {
        Ok(r) => r,
        Err(code) => return code,
    };
    let request = mlops_core::predict::Request {
        model: &args.model,
        registry: &registry,
        input: args.input.clone(),
        input_format: args.input_format.map(Into::into),
        output: args.output.clone(),
        output_format: args.output_format.map(Into::into),
        id_column: args.id_column.clone(),
        overwrite: args.overwrite,
        options: Options {
            batch_rows: args.batch_rows,
            threads: args.threads.unwrap_or(Options::default().threads),
        },
    };
    match mlops_core::predict::predict(&request, &mut super::Console(format)) {
        Ok(done) => {
            if format == Format::Json {
                match super::report_json(&done, None) {
                    Ok(json) => println!("{json}"),
                    Err(code) => return code,
                }
            }
            Exit::Ok
        }
        Err(p) => super::failed(&p),
    }
}
