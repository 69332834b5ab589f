package com.amazonaws.services.lambda.runtime;

/** The Amazon Cognito identity that invoked the function (mobile SDK calls only). */
public interface CognitoIdentity {
    String getIdentityId();
    String getIdentityPoolId();
}
