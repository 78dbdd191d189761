use super::{ConfigArgs, Ctx};
use crate::{Output, exit, render};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub config: ConfigArgs,
}

pub fn run(args: &Args, ctx: &Ctx) -> u8 {
    let Ok(host) = super::host(ctx, Default::default()) else { return exit::FAILED };
    super::block_on(async {
        let opened = match super::open(&host, &args.config, false, ctx).await {
            Ok(o) => o,
            Err(code) => return code,
        };
        let checked = &opened.checked;
        let valid = checked.is_valid();
        match ctx.output {
            Output::Json => {
                let mut v = render::findings_json(checked);
                v["cluster"] = checked.spec.as_ref().filter(|_| valid).map(render::summary_json).into();
                v["backendChecks"] = opened.plugin.is_some().into();
                render::print_json(&v);
            }
            Output::Text => {
                render::diagnostics(checked);
                if let Some(nf) = &opened.missing
                    && args.config.explicit()
                {
                    errln!("note: backend-specific checks skipped: {nf}");
                }
                if let (true, Some(spec)) = (valid, &checked.spec) {
                    outln!("{} is valid: {}", checked.source.name, render::summary_line(spec));
                }
            }
        }
        if valid { exit::OK } else { exit::INVALID }
    })
}
