# HTTP API with exactly the two routes of the contract, payload format 2.0.
resource "aws_apigatewayv2_api" "http" {
  name          = "${var.name_prefix}-api"
  protocol_type = "HTTP"
  description   = "otpd: POST /GenerateOTP and POST /VerifyOTP"

  dynamic "cors_configuration" {
    for_each = length(var.allowed_origins) > 0 ? [1] : []
    content {
      allow_origins  = var.allowed_origins
      allow_methods  = ["POST"]
      allow_headers  = ["content-type"]
      expose_headers = ["retry-after"]
      max_age        = 600
    }
  }

  tags = var.tags
}

locals {
  routes = {
    GenerateOTP = "POST /GenerateOTP"
    VerifyOTP   = "POST /VerifyOTP"
  }
}

resource "aws_apigatewayv2_integration" "route" {
  for_each               = local.routes
  api_id                 = aws_apigatewayv2_api.http.id
  integration_type       = "AWS_PROXY"
  integration_uri        = aws_lambda_function.this[each.key].invoke_arn
  payload_format_version = "2.0"
}

resource "aws_apigatewayv2_route" "route" {
  #checkov:skip=CKV_AWS_309:the API is public by design (sign-up forms); abuse is bounded by throttling, per-address limits and the attempt limit.
  for_each           = local.routes
  api_id             = aws_apigatewayv2_api.http.id
  route_key          = each.value
  target             = "integrations/${aws_apigatewayv2_integration.route[each.key].id}"
  authorization_type = "NONE"
}

resource "aws_cloudwatch_log_group" "api" {
  name              = "/aws/apigateway/${var.name_prefix}-api"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.otpd.arn
  tags              = var.tags
}

resource "aws_apigatewayv2_stage" "default" {
  api_id      = aws_apigatewayv2_api.http.id
  name        = "$default"
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.throttle_rate_limit
    throttling_burst_limit = var.throttle_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api.arn
    format = jsonencode({
      requestId = "$context.requestId"
      ip        = "$context.identity.sourceIp"
      time      = "$context.requestTime"
      route     = "$context.routeKey"
      status    = "$context.status"
      latency   = "$context.responseLatency"
      error     = "$context.integrationErrorMessage"
    })
  }

  tags = var.tags
}

resource "aws_lambda_permission" "api" {
  for_each      = local.routes
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.this[each.key].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.http.execution_arn}/*/*/${each.key}"
}
