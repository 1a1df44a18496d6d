//! SendOTPEmail: the table's stream records in, code mails out through SES,
//! partial batch failures back to Lambda.

use std::sync::Arc;

use aws_lambda_events::event::dynamodb::Event;
use lambda_runtime::{service_fn, LambdaEvent};
use otpd_core::delivery::{Delivery, RetryPolicy};
use otpd_core::SystemClock;
use otpd_lambda::send::{SendResponse, Sender};
use otpd_lambda::LambdaEnv;
use otpd_mail::{Composer, SesMailer, Templates};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    otpd_lambda::init_telemetry("SendOTPEmail");
    let env = LambdaEnv::from_env()?;
    let aws = otpd_lambda::aws().await;
    let composer = Composer {
        from: env.mail_from.clone(),
        product: env.product_name.clone(),
        templates: Templates::default(),
    };
    let sender = Arc::new(Sender::new(
        Delivery {
            keys: otpd_lambda::load_keys(&env, &aws).await?,
            code_length: env.rules.code_length,
            retry: RetryPolicy::default(),
        },
        Arc::new(SesMailer::new(aws_sdk_sesv2::Client::new(&aws), composer)),
        Arc::new(SystemClock),
    ));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let sender = sender.clone();
        async move { Ok::<SendResponse, lambda_runtime::Error>(sender.handle(event.payload).await) }
    }))
    .await
}
